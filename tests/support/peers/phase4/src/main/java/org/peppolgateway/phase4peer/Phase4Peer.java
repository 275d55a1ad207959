package org.peppolgateway.phase4peer;

import com.helger.peppolid.IParticipantIdentifier;
import com.helger.phase4.crypto.AS4CryptoFactoryInMemoryKeyStore;
import com.helger.phase4.crypto.IAS4CryptoFactory;
import com.helger.phase4.incoming.mgr.AS4ProfileSelector;
import com.helger.phase4.peppol.Phase4PeppolSender;
import com.helger.phase4.profile.peppol.AS4PeppolProfileRegistarSPI;
import com.helger.phase4.sender.EAS4UserMessageSendResult;
import com.helger.phase4.sender.IAS4SignalMessageValidationResultHandler;
import com.helger.photon.io.WebFileIO;
import com.helger.security.certificate.TrustedCAChecker;
import com.helger.security.revocation.ERevocationCheckMode;
import com.helger.servlet.mock.MockServletContext;
import com.helger.smpclient.peppol.SMPClientReadOnly;
import com.helger.smpclient.url.PeppolNaptrURLProvider;
import com.helger.web.scope.mgr.WebScopeManager;
import com.helger.xml.serialize.read.DOMReader;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.w3c.dom.Element;
import com.helger.collection.commons.CommonsArrayList;
import com.helger.dns.dnsjava.CustomServerConfigProvider;
import org.xbill.DNS.Lookup;
import org.xbill.DNS.ResolverConfig;
import org.xbill.DNS.SimpleResolver;

/**
 * One JVM per test session, driven over stdin/stdout: each request is one line of tab-separated
 * {@code key=value} fields (the first field is the command), each answer one JSON line. Commands:
 * {@code init} (keys, trust, store directory; starts the receiver), {@code send} (phase4's Peppol
 * sender, direct or through SML/SMP discovery), {@code sendmany} (the same sender, direct, {@code n}
 * times from {@code threads} threads, for a benchmark; only the outcome counts come back),
 * {@code quit}. phase4's own logging goes to stderr.
 */
public final class Phase4Peer {
  private static PrintStream protocol;
  private static volatile TrustedCAChecker apCaChecker;
  private static volatile Path storeDirectory;
  private static IAS4CryptoFactory ours;
  private static KeyStore smpTrust;
  private static String seatId;
  private static Server jetty;

  private Phase4Peer() {}

  static TrustedCAChecker apCaChecker() {
    return apCaChecker;
  }

  static Path storeDirectory() {
    return storeDirectory;
  }

  static void log(String line) {
    System.err.println("phase4-peer: " + line);
  }

  public static void main(String[] args) throws Exception {
    protocol = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);
    System.setOut(System.err); // nothing but answers on stdout
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) continue;
      Map<String, String> req = new HashMap<>();
      String[] fields = line.split("\t");
      for (int i = 1; i < fields.length; i++) {
        int eq = fields[i].indexOf('=');
        req.put(fields[i].substring(0, eq), fields[i].substring(eq + 1));
      }
      Map<String, Object> answer;
      try {
        answer = switch (fields[0]) {
          case "init" -> init(req);
          case "send" -> send(req);
          case "sendmany" -> sendMany(req);
          case "quit" -> {
            stop();
            yield Map.of("ok", true);
          }
          default -> Map.of("ok", false, "error", "unknown command " + fields[0]);
        };
      } catch (Throwable e) {
        e.printStackTrace();
        answer = new LinkedHashMap<>();
        answer.put("ok", false);
        answer.put("error", e.toString());
      }
      protocol.println(Json.write(answer));
      if (fields[0].equals("quit")) break;
    }
    stop();
    System.exit(0);
  }

  private static void stop() throws Exception {
    if (jetty != null) {
      jetty.stop();
      jetty = null;
    }
  }

  private static IAS4CryptoFactory factory(String key, String cert, String chain, KeyStore trust) throws Exception {
    List<X509Certificate> extra = chain == null ? List.of() : Pem.certificates(Path.of(chain));
    KeyStore store = Pem.keyStore(Path.of(key), Path.of(cert), extra);
    return new AS4CryptoFactoryInMemoryKeyStore(store, Pem.KEY_ALIAS, Pem.PASSWORD, trust);
  }

  private static Map<String, Object> init(Map<String, String> req) throws Exception {
    storeDirectory = Path.of(req.get("store"));
    Files.createDirectories(storeDirectory);
    WebScopeManager.onGlobalBegin(MockServletContext.create());
    Path data = storeDirectory.resolve("phase4-data");
    Files.createDirectories(data);
    WebFileIO.initPaths(data.toFile(), data.toString(), false);
    AS4ProfileSelector.setCustomDefaultAS4ProfileID(AS4PeppolProfileRegistarSPI.AS4_PROFILE_ID);

    // Trust: the dev PKI's AP CA (and its root) instead of the Peppol G3 CAs phase4 pins by default.
    // The dev certificates carry no OCSP/CRL pointers, so revocation checking is configured off.
    List<X509Certificate> apCa = Pem.certificates(Path.of(req.get("ap_ca")));
    List<X509Certificate> root = Pem.certificates(Path.of(req.get("root_ca")));
    ERevocationCheckMode revocation = ERevocationCheckMode.valueOf(req.getOrDefault("revocation", "NONE"));
    apCaChecker = new TrustedCAChecker(revocation, Duration.ofMinutes(5), 100, apCa.toArray(new X509Certificate[0]));
    List<X509Certificate> apTrust = new ArrayList<>(apCa);
    apTrust.addAll(root);
    KeyStore trust = Pem.trustStore(apTrust);
    List<X509Certificate> smp = new ArrayList<>(Pem.certificates(Path.of(req.get("smp_ca"))));
    smp.addAll(root);
    smpTrust = Pem.trustStore(smp);

    ours = factory(req.get("key"), req.get("cert"), req.get("ap_ca"), trust);
    seatId = Pem.certificate(Path.of(req.get("cert"))).getSubjectX500Principal().getName().replaceAll(".*CN=([^,]+).*", "$1");

    if (req.containsKey("dns")) {
      // phase4's NAPTR lookup takes its servers from dnsjava's resolver configuration
      String[] hp = req.get("dns").split(":");
      InetSocketAddress server = new InetSocketAddress(hp[0], Integer.parseInt(hp[1]));
      ResolverConfig.setConfigProviders(List.of(new CustomServerConfigProvider(new CommonsArrayList<>(server))));
      ResolverConfig.refresh();
      Lookup.setDefaultResolver(new SimpleResolver(server));
    }

    // The receiver: phase4's AS4 servlet in Jetty. "/as4" answers with our own identity; "/as4-foreign"
    // decrypts with it too but signs its receipts with a key from another PKI (a negative control).
    IAS4CryptoFactory foreign =
        req.containsKey("foreign_key") ? factory(req.get("foreign_key"), req.get("foreign_cert"), null, trust) : ours;
    jetty = new Server();
    ServerConnector connector = new ServerConnector(jetty);
    connector.setHost("127.0.0.1");
    connector.setPort(Integer.parseInt(req.getOrDefault("port", "0")));
    jetty.addConnector(connector);
    ServletContextHandler context = new ServletContextHandler();
    context.setContextPath("/");
    context.addServlet(new ServletHolder(new PeerServlet(ours, ours) {}), "/as4");
    context.addServlet(new ServletHolder(new PeerServlet(foreign, ours) {}), "/as4-foreign");
    jetty.setHandler(context);
    jetty.start();
    Map<String, Object> answer = new LinkedHashMap<>();
    answer.put("ok", true);
    answer.put("port", connector.getLocalPort());
    answer.put("seat_id", seatId);
    answer.put("phase4_version", com.helger.phase4.CAS4Version.BUILD_VERSION);
    return answer;
  }

  private static Map<String, Object> send(Map<String, String> req) throws Exception {
    Element payload = DOMReader.readXMLDOM(Path.of(req.get("ubl")).toFile()).getDocumentElement();
    IParticipantIdentifier receiver =
        Phase4PeppolSender.IF.createParticipantIdentifierWithDefaultScheme(req.get("receiver"));
    Map<String, Object> answer = new LinkedHashMap<>();
    List<String> nrr = new ArrayList<>();
    List<String> errors = new ArrayList<>();
    var builder = Phase4PeppolSender.builder()
        .cryptoFactory(ours)
        .peppolAP_CAChecker(apCaChecker)
        .documentTypeID(Phase4PeppolSender.IF.createDocumentTypeIdentifierWithDefaultScheme(req.get("doctype")))
        .processID(Phase4PeppolSender.IF.createProcessIdentifierWithDefaultScheme(req.get("process")))
        .senderParticipantID(Phase4PeppolSender.IF.createParticipantIdentifierWithDefaultScheme(req.get("sender")))
        .receiverParticipantID(receiver)
        .senderPartyID(seatId)
        .countryC1(req.get("country"))
        .payload(payload)
        .endpointURLConsumer(url -> answer.put("endpoint_url", url))
        .certificateConsumer((cert, at, result) -> answer.put("endpoint_cert_check", result.name()))
        .signalMsgValidationResultHdl(new IAS4SignalMessageValidationResultHandler() {
          @Override
          public void onSuccess() {
            nrr.add("success");
          }

          @Override
          public void onError(String message) {
            nrr.add("error: " + message);
          }

          @Override
          public void onNotApplicable() {
            nrr.add("not-applicable");
          }
        })
        .signalMsgConsumer((signal, metadata, state) -> {
          answer.put("receipt_signature_checked", state.isSoapSignatureChecked());
          if (state.getSigningCertificate() != null) {
            answer.put("receipt_signer", state.getSigningCertificate().getSubjectX500Principal().getName());
          }
          if (signal.getMessageInfo() != null) {
            answer.put("ref_to_message_id", signal.getMessageInfo().getRefToMessageId());
          }
          signal.getError().forEach(e -> errors.add(e.getErrorCode() + " " + e.getErrorDetail()));
        });
    if (req.containsKey("url")) {
      builder.receiverEndpointDetails(Pem.certificate(Path.of(req.get("endpoint_cert"))), req.get("url"));
    } else {
      PeppolNaptrURLProvider naptr = new PeppolNaptrURLProvider();
      naptr.setUseDNSCache(false);
      SMPClientReadOnly smp = new SMPClientReadOnly(naptr, receiver, req.get("sml_zone"));
      smp.setTrustStore(smpTrust);
      smp.setVerifySignature(true);
      answer.put("smp_url", smp.getSMPHostURI());
      builder.smpClient(smp);
    }
    List<String> exceptions = new ArrayList<>();
    EAS4UserMessageSendResult result = builder.sendMessageAndCheckForReceipt(e -> {
      e.printStackTrace();
      exceptions.add(e.toString());
    });
    answer.put("ok", true);
    answer.put("result", result.name());
    answer.put("nrr", nrr);
    answer.put("errors", errors);
    answer.put("exceptions", exceptions);
    return answer;
  }

  /**
   * {@code n} messages to one endpoint from {@code threads} threads, each one built, signed,
   * encrypted and sent by phase4's Peppol sender, its receipt checked (signature and NRR digests).
   * The UBL is read for every message, as a sender handed a new document would. An optional
   * {@code key}/{@code cert} pair sends under another identity than the receiver's.
   */
  private static Map<String, Object> sendMany(Map<String, String> req) throws Exception {
    int n = Integer.parseInt(req.get("n"));
    int threads = Integer.parseInt(req.getOrDefault("threads", "1"));
    IAS4CryptoFactory crypto = ours;
    String seat = seatId;
    if (req.containsKey("key")) {
      List<X509Certificate> apCa = Pem.certificates(Path.of(req.get("ap_ca")));
      List<X509Certificate> trust = new ArrayList<>(apCa);
      trust.addAll(Pem.certificates(Path.of(req.get("root_ca"))));
      crypto = factory(req.get("key"), req.get("cert"), req.get("ap_ca"), Pem.trustStore(trust));
      seat = Pem.certificate(Path.of(req.get("cert"))).getSubjectX500Principal().getName().replaceAll(".*CN=([^,]+).*", "$1");
    }
    X509Certificate endpointCert = Pem.certificate(Path.of(req.get("endpoint_cert")));
    Path ubl = Path.of(req.get("ubl"));
    IAS4CryptoFactory factory = crypto;
    String senderSeat = seat;
    AtomicInteger delivered = new AtomicInteger();
    AtomicInteger failed = new AtomicInteger();
    AtomicReference<String> firstError = new AtomicReference<>();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    long started = System.nanoTime();
    try {
      List<Future<?>> done = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        done.add(pool.submit(() -> {
          List<String> nrr = new ArrayList<>();
          List<String> exceptions = new ArrayList<>();
          EAS4UserMessageSendResult result;
          try {
            Element payload = DOMReader.readXMLDOM(ubl.toFile()).getDocumentElement();
            result = Phase4PeppolSender.builder()
                .cryptoFactory(factory)
                .peppolAP_CAChecker(apCaChecker)
                .documentTypeID(Phase4PeppolSender.IF.createDocumentTypeIdentifierWithDefaultScheme(req.get("doctype")))
                .processID(Phase4PeppolSender.IF.createProcessIdentifierWithDefaultScheme(req.get("process")))
                .senderParticipantID(Phase4PeppolSender.IF.createParticipantIdentifierWithDefaultScheme(req.get("sender")))
                .receiverParticipantID(Phase4PeppolSender.IF.createParticipantIdentifierWithDefaultScheme(req.get("receiver")))
                .senderPartyID(senderSeat)
                .countryC1(req.get("country"))
                .payload(payload)
                .receiverEndpointDetails(endpointCert, req.get("url"))
                .signalMsgValidationResultHdl(new IAS4SignalMessageValidationResultHandler() {
                  @Override
                  public void onSuccess() {
                    nrr.add("success");
                  }

                  @Override
                  public void onError(String message) {
                    nrr.add("error: " + message);
                  }

                  @Override
                  public void onNotApplicable() {
                    nrr.add("not-applicable");
                  }
                })
                .sendMessageAndCheckForReceipt(e -> exceptions.add(e.toString()));
          } catch (Exception e) {
            exceptions.add(e.toString());
            result = null;
          }
          if (result == EAS4UserMessageSendResult.SUCCESS && nrr.equals(List.of("success"))) {
            delivered.incrementAndGet();
          } else {
            failed.incrementAndGet();
            firstError.compareAndSet(null, result + " nrr=" + nrr + " " + exceptions);
          }
        }));
      }
      for (Future<?> f : done) f.get();
    } finally {
      pool.shutdown();
      pool.awaitTermination(1, TimeUnit.MINUTES);
    }
    Map<String, Object> answer = new LinkedHashMap<>();
    answer.put("ok", true);
    answer.put("delivered", delivered.get());
    answer.put("failed", failed.get());
    answer.put("seconds", (System.nanoTime() - started) / 1e9);
    answer.put("first_error", firstError.get());
    return answer;
  }
}
