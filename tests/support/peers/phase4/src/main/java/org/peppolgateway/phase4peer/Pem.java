package org.peppolgateway.phase4peer;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** PEM files of the dev PKI turned into the Java objects and key stores phase4 wants. */
final class Pem {
  static final char[] PASSWORD = "peer".toCharArray();
  static final String KEY_ALIAS = "ap";

  private static final Pattern BLOCK =
      Pattern.compile("-----BEGIN ([A-Z ]+)-----([^-]+)-----END \\1-----");

  private Pem() {}

  private static List<byte[]> blocks(Path file, String type) throws IOException {
    String text = Files.readString(file, StandardCharsets.US_ASCII);
    List<byte[]> out = new ArrayList<>();
    Matcher m = BLOCK.matcher(text);
    while (m.find()) {
      if (m.group(1).equals(type)) {
        out.add(Base64.getMimeDecoder().decode(m.group(2)));
      }
    }
    if (out.isEmpty()) {
      throw new IOException("no " + type + " in " + file);
    }
    return out;
  }

  static X509Certificate certificate(Path file) throws IOException, GeneralSecurityException {
    return certificates(file).get(0);
  }

  static List<X509Certificate> certificates(Path file) throws IOException, GeneralSecurityException {
    CertificateFactory factory = CertificateFactory.getInstance("X.509");
    List<X509Certificate> out = new ArrayList<>();
    for (byte[] der : blocks(file, "CERTIFICATE")) {
      out.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der)));
    }
    return out;
  }

  static PrivateKey privateKey(Path file) throws IOException, GeneralSecurityException {
    return KeyFactory.getInstance("RSA")
        .generatePrivate(new PKCS8EncodedKeySpec(blocks(file, "PRIVATE KEY").get(0)));
  }

  /** A key store holding one private key entry under {@link #KEY_ALIAS}. */
  static KeyStore keyStore(Path key, Path cert, List<X509Certificate> chain)
      throws IOException, GeneralSecurityException {
    KeyStore store = KeyStore.getInstance("PKCS12");
    store.load(null, null);
    List<Certificate> full = new ArrayList<>();
    full.add(certificate(cert));
    full.addAll(chain);
    store.setKeyEntry(KEY_ALIAS, privateKey(key), PASSWORD, full.toArray(new Certificate[0]));
    return store;
  }

  /** A trust store holding the given certificates as trusted entries. */
  static KeyStore trustStore(List<X509Certificate> certificates) throws IOException, GeneralSecurityException {
    KeyStore store = KeyStore.getInstance("PKCS12");
    store.load(null, null);
    int i = 0;
    for (X509Certificate cert : certificates) {
      store.setCertificateEntry("trusted-" + i++, cert);
    }
    return store;
  }
}
