package org.peppolgateway.phivebench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

import org.w3c.dom.Document;

import com.helger.diver.api.coord.DVRCoordinate;
import com.helger.phive.api.execute.ValidationExecutionManager;
import com.helger.phive.api.executor.AbstractValidationExecutor;
import com.helger.phive.api.executor.IValidationExecutor;
import com.helger.phive.api.executorset.IValidationExecutorSet;
import com.helger.phive.api.executorset.ValidationExecutorSetRegistry;
import com.helger.phive.api.result.ValidationResult;
import com.helger.phive.api.result.ValidationResultList;
import com.helger.phive.api.validity.IValidityDeterminator;
import com.helger.phive.peppol.PeppolValidation;
import com.helger.phive.xml.source.IValidationSourceXML;
import com.helger.phive.xml.source.ValidationSourceXML;
import com.helger.xml.serialize.read.DOMReader;

/**
 * Validates one document with phive's Peppol BIS Billing 3.0 executor set (UBL 2.1 XSD, CEN EN
 * 16931, Peppol rules), warming the JVM first, and prints one JSON line: CPU per document (the
 * validating thread's and the whole process's, JIT and GC included), wall time, the JVM's RSS and
 * what each layer found. Each iteration starts from the document's bytes (DOM parse included), as
 * the gateway's validation does.
 *
 * <p>Arguments: FILE SET WARMUP COUNT, SET being phive's id of the executor set, as
 * eu.peppol.bis3:invoice:2026.5 (its last part is the folder of the release's artefacts in the rule
 * jar, external/schematron/openpeppol/2026.5).
 */
public final class PhiveBench {
  private PhiveBench() {}

  /** Every layer runs, even after one that failed, as the gateway's validation does. */
  @SuppressWarnings({"rawtypes", "unchecked"})
  private static ValidationExecutionManager<IValidationSourceXML> everyLayer(
      IValidationExecutorSet<IValidationSourceXML> set) {
    var manager = new ValidationExecutionManager<IValidationSourceXML>(IValidityDeterminator.createDefault());
    for (IValidationExecutor<IValidationSourceXML> executor : set.executors()) {
      IValidationExecutor<IValidationSourceXML> clone = executor.getClone();
      if (clone instanceof AbstractValidationExecutor abstractExecutor) {
        abstractExecutor.setStopValidationOnError(false);
      }
      manager.addExecutor(clone);
    }
    return manager;
  }

  private static ValidationResultList validate(ValidationExecutionManager<IValidationSourceXML> manager, byte[] data) {
    Document document = DOMReader.readXMLDOM(data);
    if (document == null) {
      throw new IllegalStateException("not well-formed XML");
    }
    ValidationSourceXML source = ValidationSourceXML.create("document", document);
    ValidationResultList results = new ValidationResultList(source);
    manager.executeValidation(source, results, Locale.ROOT);
    return results;
  }

  private static long processCpuNanos() {
    var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    return os.getProcessCpuTime();
  }

  private static Map<String, Long> memory() throws IOException {
    Map<String, Long> kb = new TreeMap<>();
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      String[] parts = line.split("\\s+");
      if (line.startsWith("VmRSS:") || line.startsWith("VmHWM:")) {
        kb.put(parts[0].substring(0, parts[0].length() - 1), Long.parseLong(parts[1]));
      }
    }
    return kb;
  }

  private static String quote(String text) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.append('"').toString();
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: PhiveBench FILE SET WARMUP COUNT");
      System.exit(2);
    }
    byte[] data = Files.readAllBytes(Path.of(args[0]));
    DVRCoordinate id = DVRCoordinate.parseOrThrow(args[1]);
    int warmup = Integer.parseInt(args[2]);
    int count = Integer.parseInt(args[3]);

    var registry = new ValidationExecutorSetRegistry<IValidationSourceXML>();
    PeppolValidation.initStandard(registry);
    IValidationExecutorSet<IValidationSourceXML> set = registry.getOfID(id);
    if (set == null) {
      throw new IllegalStateException("phive has no executor set " + id.getAsSingleID());
    }
    var manager = everyLayer(set);

    long loadStart = processCpuNanos();
    ValidationResultList first = validate(manager, data);
    long firstCpu = processCpuNanos() - loadStart;
    for (int i = 0; i < warmup; i++) {
      validate(manager, data);
    }
    System.gc();

    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    long thread0 = threads.getCurrentThreadCpuTime();
    long process0 = processCpuNanos();
    long wall0 = System.nanoTime();
    List<Integer> errors = new ArrayList<>();
    ValidationResultList last = first;
    for (int i = 0; i < count; i++) {
      last = validate(manager, data);
    }
    long wall = System.nanoTime() - wall0;
    long process = processCpuNanos() - process0;
    long thread = threads.getCurrentThreadCpuTime() - thread0;
    Map<String, Long> memory = memory();
    Runtime runtime = Runtime.getRuntime();

    StringBuilder layers = new StringBuilder("[");
    for (ValidationResult result : last) {
      if (layers.length() > 1) {
        layers.append(',');
      }
      List<String> ids = new ArrayList<>();
      result.getErrorList().forEach(error -> {
        if (error.getErrorLevel().isError()) {
          ids.add(quote(String.valueOf(error.getErrorID())));
        }
      });
      errors.add(ids.size());
      layers.append("{\"artefact\":")
          .append(quote(result.getValidationArtefact().getRuleResourcePath()))
          .append(",\"type\":")
          .append(quote(result.getValidationArtefact().getValidationType().getID()))
          .append(",\"skipped\":")
          .append(result.isSkipped())
          .append(",\"errors\":")
          .append(ids)
          .append('}');
    }
    layers.append(']');

    System.out.println("{\"set\":" + quote(id.getAsSingleID())
        + ",\"phive\":" + quote(String.valueOf(ValidationExecutionManager.class.getPackage().getImplementationVersion()))
        + ",\"java\":" + quote(System.getProperty("java.vm.name") + " " + System.getProperty("java.version"))
        + ",\"documents\":" + count
        + ",\"warmup\":" + warmup
        + ",\"first_cpu_ms\":" + firstCpu / 1e6
        + ",\"thread_cpu_ms\":" + thread / 1e6 / count
        + ",\"process_cpu_ms\":" + process / 1e6 / count
        + ",\"wall_ms\":" + wall / 1e6 / count
        + ",\"rss_kb\":" + memory.get("VmRSS")
        + ",\"hwm_kb\":" + memory.get("VmHWM")
        + ",\"heap_used_kb\":" + (runtime.totalMemory() - runtime.freeMemory()) / 1024
        + ",\"heap_committed_kb\":" + runtime.totalMemory() / 1024
        + ",\"valid\":" + last.containsNoError()
        + ",\"layers\":" + layers
        + "}");
  }
}
