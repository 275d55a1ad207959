package org.peppolgateway.phase4peer;

import com.helger.http.EHttpMethod;
import com.helger.phase4.crypto.IAS4CryptoFactory;
import com.helger.phase4.crypto.IAS4DecryptParameterModifier;
import com.helger.phase4.incoming.AS4RequestHandler;
import com.helger.phase4.incoming.crypto.AS4IncomingSecurityConfiguration;
import com.helger.phase4.servlet.AS4UnifiedResponse;
import com.helger.phase4.servlet.AS4XServletHandler;
import com.helger.phase4.servlet.IAS4ServletRequestHandlerCustomizer;
import com.helger.phase4.wss.AS4CertificateOnlySignatureTrustValidator;
import com.helger.web.scope.IRequestWebScopeWithoutResponse;
import com.helger.xservlet.AbstractXServlet;
import org.apache.wss4j.dom.WSConstants;
import org.apache.wss4j.dom.engine.WSSConfig;

/**
 * phase4's AS4 servlet handler with this peer's keys. As a Peppol receiver does, WSS4J only checks
 * the signature with the certificate from the message; whether that certificate chains to the AP CA
 * is decided in {@link StoringProcessor} with the dev PKI's CA checker.
 */
class PeerServlet extends AbstractXServlet {
  PeerServlet(IAS4CryptoFactory sign, IAS4CryptoFactory crypt) {
    settings().setMultipartEnabled(false);
    IAS4ServletRequestHandlerCustomizer customizer = new IAS4ServletRequestHandlerCustomizer() {
      @Override
      public void customizeBeforeHandling(
          IRequestWebScopeWithoutResponse scope, AS4UnifiedResponse response, AS4RequestHandler handler) {
        handler.setCryptoFactorySign(sign);
        handler.setCryptoFactoryCrypt(crypt);
        AS4IncomingSecurityConfiguration security = AS4IncomingSecurityConfiguration.createDefaultInstance();
        security.setDecryptParameterModifier(new IAS4DecryptParameterModifier() {
          @Override
          public void modifyWSSConfig(WSSConfig config) {
            config.setValidator(WSConstants.SIGNATURE, new AS4CertificateOnlySignatureTrustValidator());
          }
        });
        handler.setIncomingSecurityConfiguration(security);
      }

      @Override
      public void customizeAfterHandling(
          IRequestWebScopeWithoutResponse scope, AS4UnifiedResponse response, AS4RequestHandler handler) {}
    };
    handlerRegistry().registerHandler(EHttpMethod.POST, new AS4XServletHandler().setRequestHandlerCustomizer(customizer));
  }
}
