"""The Peppol AS4 message layer (sans-IO apart from :func:`send_message`).

Sending side::

    built = build_user_message(header, sbd_bytes, signing_key=k, signing_cert=c,
                               receiver_cert=smp_endpoint_cert)
    receipt = await send_message(session, url, built, receiver_cert=smp_endpoint_cert)

Receiving side::

    msg = parse_user_message(body, content_type, our_key=k, our_cert=c)
    # decide whether msg.signer_certificate is trusted, store msg.payload, then:
    answer = build_receipt(msg, k, c)

Large messages stream: :class:`MessageWriter` takes payload chunks and returns encrypted
attachment chunks plus the frame around them (``send_message(..., attachment=file)``), and
:class:`MessageReader` takes the HTTP body in chunks and returns payload chunks.

Every failure is an :class:`As4Error` subclass whose ``code`` is the ebMS error code to answer
with (``build_error_signal``). Nothing here imports the gateway or the SMP client.
"""

from as4._build import build_user_message, format_timestamp, new_message_id
from as4._errors import (
    As4Error,
    DecompressionFailure,
    DeliveryFailure,
    DuplicateDetected,
    EbmsErrorReceived,
    FailedAuthentication,
    FailedDecryption,
    FeatureNotSupported,
    HttpStatusError,
    InvalidHeader,
    InvalidReceipt,
    MimeInconsistency,
    MissingReceipt,
    NotServiced,
    OtherError,
    PolicyNoncompliance,
    ProcessingModeMismatch,
    SendError,
    TransportError,
    ValueInconsistent,
    ValueNotRecognized,
    error_for_code,
)
from as4._model import (
    BuiltMessage,
    ErrorSignal,
    Receipt,
    ReceivedMessage,
    ReferenceCheck,
    UserMessageHeader,
)
from as4._parse import ParseTrace, parse_user_message, seat_id, verify_without_key
from as4._sender import send_message
from as4._signals import (
    SOAP_CONTENT_TYPE,
    build_error_signal,
    build_receipt,
    parse_signal,
    verify_receipt,
)
from as4._stream import (
    GcmDecryptor,
    GcmEncryptor,
    GzipDecoder,
    GzipEncoder,
    MessageReader,
    MessageWriter,
    MimeSplitter,
    StreamedFrame,
)
from as4._tls import new_tls_context, tls_context
from as4._trust import check_ap_certificate, load_certificates

__all__ = [
    "SOAP_CONTENT_TYPE",
    "As4Error",
    "BuiltMessage",
    "DecompressionFailure",
    "DeliveryFailure",
    "DuplicateDetected",
    "EbmsErrorReceived",
    "ErrorSignal",
    "FailedAuthentication",
    "FailedDecryption",
    "FeatureNotSupported",
    "GcmDecryptor",
    "GcmEncryptor",
    "GzipDecoder",
    "GzipEncoder",
    "HttpStatusError",
    "InvalidHeader",
    "InvalidReceipt",
    "MessageReader",
    "MessageWriter",
    "MimeInconsistency",
    "MimeSplitter",
    "MissingReceipt",
    "NotServiced",
    "OtherError",
    "ParseTrace",
    "PolicyNoncompliance",
    "ProcessingModeMismatch",
    "Receipt",
    "ReceivedMessage",
    "ReferenceCheck",
    "SendError",
    "StreamedFrame",
    "TransportError",
    "UserMessageHeader",
    "ValueInconsistent",
    "ValueNotRecognized",
    "build_error_signal",
    "build_receipt",
    "build_user_message",
    "check_ap_certificate",
    "error_for_code",
    "format_timestamp",
    "load_certificates",
    "new_message_id",
    "new_tls_context",
    "parse_signal",
    "parse_user_message",
    "seat_id",
    "send_message",
    "tls_context",
    "verify_receipt",
    "verify_without_key",
]
