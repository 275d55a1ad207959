package org.peppolgateway.phase4peer;

import com.helger.collection.commons.ICommonsList;
import com.helger.http.header.HttpHeaderMap;
import com.helger.peppol.sbdh.PeppolSBDHData;
import com.helger.peppol.sbdh.PeppolSBDHDataReader;
import com.helger.peppolid.factory.PeppolIdentifierFactory;
import com.helger.phase4.attachment.WSS4JAttachment;
import com.helger.phase4.ebms3header.Ebms3Property;
import com.helger.phase4.ebms3header.Ebms3SignalMessage;
import com.helger.phase4.ebms3header.Ebms3UserMessage;
import com.helger.phase4.error.AS4ErrorList;
import com.helger.phase4.incoming.IAS4IncomingMessageMetadata;
import com.helger.phase4.incoming.IAS4IncomingMessageState;
import com.helger.phase4.incoming.spi.AS4MessageProcessorResult;
import com.helger.phase4.incoming.spi.AS4SignalMessageProcessorResult;
import com.helger.phase4.incoming.spi.IAS4IncomingMessageProcessorSPI;
import com.helger.phase4.model.error.EEbmsError;
import com.helger.phase4.model.error.Ebms3ErrorBuilder;
import com.helger.phase4.model.pmode.IPMode;
import com.helger.security.certificate.ECertificateCheckResult;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.cert.X509Certificate;
import java.time.OffsetDateTime;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import org.apache.wss4j.dom.str.STRParser;
import org.w3c.dom.Node;

/**
 * The receiving side of the peer: phase4's AS4 servlet has already decrypted the message and
 * checked its signature when it calls this; here come the checks a Peppol receiver adds (message
 * encrypted, signed, both certificates as BinarySecurityToken, signer chains to the AP CA) and the
 * Peppol SBDH read. Accepted documents are written to the store directory, one line per message in
 * received.jsonl, so a test sees exactly what phase4 took in.
 */
public final class StoringProcessor implements IAS4IncomingMessageProcessorSPI {
  private static AS4ErrorList fail(
      AS4ErrorList errors, EEbmsError code, String messageId, String detail) {
    errors.add(
        new Ebms3ErrorBuilder(code, Locale.US).refToMessageInError(messageId).errorDetail(detail).build());
    Phase4Peer.log("refused " + messageId + ": " + code.getErrorCode() + " " + detail);
    return errors;
  }

  private static String property(Ebms3UserMessage message, String name) {
    if (message.getMessageProperties() == null) return null;
    for (Ebms3Property p : message.getMessageProperties().getProperty()) {
      if (name.equals(p.getName())) return p.getValue();
    }
    return null;
  }

  @Override
  public AS4MessageProcessorResult processAS4UserMessage(
      IAS4IncomingMessageMetadata metadata,
      HttpHeaderMap headers,
      Ebms3UserMessage message,
      IPMode pmode,
      Node payload,
      ICommonsList<WSS4JAttachment> attachments,
      IAS4IncomingMessageState state,
      AS4ErrorList errors) {
    String id = message.getMessageInfo().getMessageId();
    if (!state.isSoapDecrypted()) {
      fail(errors, EEbmsError.EBMS_FAILED_DECRYPTION, id, "message was not encrypted");
      return AS4MessageProcessorResult.createFailure();
    }
    if (!state.isSoapSignatureChecked()) {
      fail(errors, EEbmsError.EBMS_FAILED_AUTHENTICATION, id, "message was not signed");
      return AS4MessageProcessorResult.createFailure();
    }
    if (state.getSigningCertificateReferenceType() != STRParser.REFERENCE_TYPE.DIRECT_REF
        || state.getDecryptingCertificateReferenceType() != STRParser.REFERENCE_TYPE.DIRECT_REF) {
      fail(errors, EEbmsError.EBMS_POLICY_NONCOMPLIANCE, id, "certificates must be BinarySecurityTokens");
      return AS4MessageProcessorResult.createFailure();
    }
    X509Certificate signer = state.getSigningCertificate();
    ECertificateCheckResult check = Phase4Peer.apCaChecker().checkCertificate(signer, OffsetDateTime.now());
    if (check.isInvalid()) {
      fail(errors, EEbmsError.EBMS_FAILED_AUTHENTICATION, id, "signing certificate: " + check.getReason());
      return AS4MessageProcessorResult.createFailure();
    }
    if (attachments == null || attachments.isEmpty()) {
      fail(errors, EEbmsError.EBMS_OTHER, id, "no payload");
      return AS4MessageProcessorResult.createFailure();
    }
    byte[] sbd;
    try (InputStream in = attachments.getFirstOrNull().getSourceStream()) {
      sbd = in.readAllBytes();
    } catch (Exception e) {
      fail(errors, EEbmsError.EBMS_DECOMPRESSION_FAILURE, id, "payload: " + e);
      return AS4MessageProcessorResult.createFailure();
    }
    PeppolSBDHData data;
    try {
      data = new PeppolSBDHDataReader(PeppolIdentifierFactory.INSTANCE).extractData(new ByteArrayInputStream(sbd));
    } catch (Exception e) {
      fail(errors, EEbmsError.EBMS_OTHER, id, "not a Peppol SBD: " + e.getMessage());
      return AS4MessageProcessorResult.createFailure();
    }
    String originalSender = property(message, "originalSender");
    String finalRecipient = property(message, "finalRecipient");
    if (!data.getSenderValue().equalsIgnoreCase(String.valueOf(originalSender))
        || !data.getReceiverValue().equalsIgnoreCase(String.valueOf(finalRecipient))) {
      fail(errors, EEbmsError.EBMS_OTHER, id, "SBDH sender/receiver differ from the AS4 properties");
      return AS4MessageProcessorResult.createFailure();
    }
    try {
      Path dir = Phase4Peer.storeDirectory();
      String file = Integer.toHexString(id.hashCode()) + "-" + System.nanoTime() + ".sbd.xml";
      Files.write(dir.resolve(file), sbd);
      Map<String, Object> entry = new LinkedHashMap<>();
      entry.put("message_id", id);
      entry.put("from_party", message.getPartyInfo().getFrom().getPartyIdAtIndex(0).getValue());
      entry.put("to_party", message.getPartyInfo().getTo().getPartyIdAtIndex(0).getValue());
      entry.put("signer", signer.getSubjectX500Principal().getName());
      entry.put("sender", data.getSenderValue());
      entry.put("receiver", data.getReceiverValue());
      entry.put("document_type", data.getDocumentTypeValue());
      entry.put("process", data.getProcessValue());
      entry.put("country_c1", data.getCountryC1());
      entry.put("instance_id", data.getInstanceIdentifier());
      entry.put("file", file);
      Files.write(
          dir.resolve("received.jsonl"),
          (Json.write(entry) + "\n").getBytes(StandardCharsets.UTF_8),
          StandardOpenOption.CREATE,
          StandardOpenOption.APPEND);
    } catch (IOException e) {
      fail(errors, EEbmsError.EBMS_OTHER, id, "could not store: " + e);
      return AS4MessageProcessorResult.createFailure();
    }
    return AS4MessageProcessorResult.createSuccess();
  }

  @Override
  public AS4SignalMessageProcessorResult processAS4SignalMessage(
      IAS4IncomingMessageMetadata metadata,
      HttpHeaderMap headers,
      Ebms3SignalMessage signal,
      IPMode pmode,
      IAS4IncomingMessageState state,
      AS4ErrorList errors) {
    return AS4SignalMessageProcessorResult.createSuccess();
  }

  @Override
  public void processAS4ResponseMessage(
      IAS4IncomingMessageMetadata metadata,
      IAS4IncomingMessageState state,
      String responseMessageId,
      byte[] responseBytes,
      boolean responsePayloadIsAvailable,
      AS4ErrorList errors) {
    // the receipt phase4 sends back needs nothing from us
  }
}
