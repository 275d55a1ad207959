"""``peppol-gateway as4 inspect`` and ``as4 build``: AS4 diagnostics for people and scripts.

``inspect`` prints one JSON object describing how far a message got (headers, each signature
reference with its verdict, the signer, decryption, payload) and exits 0 only when everything
that could be checked passed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

import as4
from gateway.cli.registry import Commands
from gateway.core.config import ConfigError
from gateway.documents.envelope import SbdhError, read_sbd
from gateway.security import identity

__all__ = ["KeyFileError", "register"]


class KeyFileError(Exception):
    """A key or certificate file could not be read."""


def load_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        return identity.load_key(path, str(path))
    except ConfigError as exc:
        raise KeyFileError(exc.problem) from None


def load_cert(path: Path) -> x509.Certificate:
    try:
        return identity.load_cert(path, str(path))
    except ConfigError as exc:
        raise KeyFileError(exc.problem) from None


def _header_json(header: as4.UserMessageHeader | None) -> dict[str, Any] | None:
    if header is None:
        return None
    return {
        "message_id": header.message_id,
        "conversation_id": header.conversation_id,
        "timestamp": as4.format_timestamp(header.timestamp),
        "from": header.from_party,
        "to": header.to_party,
        "service": header.service,
        "service_type": header.service_type,
        "action": header.action,
        "original_sender": header.original_sender,
        "final_recipient": header.final_recipient,
    }


def _payload_json(payload: bytes) -> dict[str, Any]:
    summary: dict[str, Any] = {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    try:
        envelope, document = read_sbd(payload)
        summary["sbdh"] = {
            "sender": envelope.sender,
            "receiver": envelope.receiver,
            "document_type": envelope.action,
            "process": envelope.process,
            "country_c1": envelope.country_c1,
            "instance_identifier": envelope.instance_identifier,
        }
        summary["document_root"] = document.tag
    except SbdhError as exc:
        summary["sbdh_error"] = {"code": exc.code, "reason": exc.message}
    return summary


def inspect_command(args: argparse.Namespace) -> int:
    body = Path(args.file).read_bytes()
    content_type = args.content_type
    if content_type is None:
        ct_file = Path(args.file + ".content-type")
        content_type = ct_file.read_text().strip() if ct_file.exists() else ""
    report: dict[str, Any] = {
        "file": str(args.file),
        "size": len(body),
        "content_type": content_type,
    }
    trace = as4.ParseTrace()
    error: as4.As4Error | None = None
    received: as4.ReceivedMessage | None = None
    key = load_key(Path(args.key)) if args.key else None
    cert = load_cert(Path(args.cert)) if args.cert else None
    if (key is None) != (cert is None):
        raise KeyFileError("--key and --cert go together")
    try:
        if key is not None and cert is not None:
            received = as4.parse_user_message(body, content_type, our_key=key, our_cert=cert, trace=trace)
        else:
            as4.verify_without_key(body, content_type, trace)
        signer = trace.signature.certificate if trace.signature else None
        if args.trust and signer is not None:
            as4.check_ap_certificate(signer, as4.load_certificates(Path(args.trust).read_bytes()))
            report["trusted"] = True
    except as4.As4Error as exc:
        error = exc
    report["attachments"] = [
        {"content_id": cid, "content_type": ct, "size": size} for cid, ct, size in trace.attachments
    ]
    report["header"] = _header_json(trace.header)
    signature = trace.signature
    report["signature"] = (
        {
            "verified": True,
            "signer": signature.certificate.subject.rfc4514_string(),
            "signer_seat_id": as4.seat_id(signature.certificate),
            "signer_valid_until": signature.certificate.not_valid_after_utc.isoformat(),
            "references": [
                {"uri": r.uri, "part": r.target, "digest": r.digest, "valid": r.valid} for r in signature.references
            ],
        }
        if signature
        else {"verified": False}
    )
    report["decryption"] = {
        None: "not attempted (no --key)",
        True: "ok",
        False: "failed",
    }[trace.decrypted if key is not None else None]
    if received is not None and received.payload is not None:
        report["payload"] = _payload_json(received.payload)
        if args.payload_out:
            Path(args.payload_out).write_bytes(received.payload)
        if args.receipt_out and key is not None and cert is not None:
            Path(args.receipt_out).write_bytes(as4.build_receipt(received, key, cert))
            report["receipt"] = str(args.receipt_out)
    if error is not None:
        if args.trust and "trusted" not in report and trace.signature is not None:
            report["trusted"] = False
        report["error"] = {
            "code": error.code,
            "short": error.short_description,
            "reason": error.reason,
        }
    report["ok"] = error is None
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if error is None else 1


def build_command(args: argparse.Namespace) -> int:
    payload = Path(args.payload).read_bytes()
    try:
        envelope, _ = read_sbd(payload)
    except SbdhError as exc:
        raise KeyFileError(f"{args.payload} is not a valid Peppol SBD: {exc}") from None
    key, cert = load_key(Path(args.key)), load_cert(Path(args.cert))
    receiver_cert = load_cert(Path(args.receiver_cert))
    header = as4.UserMessageHeader(
        message_id=args.message_id or as4.new_message_id(),
        conversation_id=args.conversation_id or str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        from_party=as4.seat_id(cert),
        to_party=as4.seat_id(receiver_cert),
        service=envelope.process,
        service_type=envelope.process_scheme,
        action=envelope.action,
        original_sender=envelope.sender,
        final_recipient=envelope.receiver,
    )
    built = as4.build_user_message(header, payload, signing_key=key, signing_cert=cert, receiver_cert=receiver_cert)
    out = Path(args.out)
    out.write_bytes(built.body)
    Path(str(out) + ".content-type").write_text(built.content_type + "\n")
    json.dump(
        {"message_id": header.message_id, "out": str(out), "size": len(built.body),
         "content_type": built.content_type, "header": _header_json(built.header)},
        sys.stdout,
        indent=2,
    )  # fmt: skip
    sys.stdout.write("\n")
    return 0


def register(commands: Commands) -> None:
    """``as4 inspect`` and ``as4 build``."""
    as4_sub = commands.group(
        "as4",
        help="inspect or build AS4 messages",
        description="AS4 diagnostics: inspect a message a partner sent, or build one by hand.",
    )
    i = as4_sub.add(
        "inspect",
        lambda args, settings: inspect_command(args),
        help="parse and verify a message, print a JSON report",
        description="Parse an AS4 message (the HTTP body in FILE) and print one JSON object: "
        "headers, each signature reference and its verdict, the signer, the decryption verdict and "
        "a payload summary. Exit 0 only when everything that could be checked passed.",
    )
    i.add_argument("file", help="the HTTP body of the message")
    i.add_argument("--content-type", help="its Content-Type header (default: read FILE.content-type)")
    i.add_argument("--key", help="our private key (PEM), to decrypt")
    i.add_argument("--cert", help="our certificate (PEM) matching --key")
    i.add_argument("--trust", help="PEM file of AP CA certificates the signer must chain to")
    i.add_argument("--payload-out", help="write the decrypted, decompressed payload here")
    i.add_argument("--receipt-out", help="write the signed receipt we would answer with here")
    b = as4_sub.add(
        "build",
        lambda args, settings: build_command(args),
        help="build a signed, encrypted message from an SBD file",
        description="Build a complete AS4 message; sender, receiver, document type and process "
        "come from the SBDH. Writes the HTTP body to OUT and its Content-Type to OUT.content-type.",
    )
    b.add_argument("--payload", required=True, help="the Peppol SBD (SBDH + document)")
    b.add_argument("--key", required=True, help="our private key (PEM)")
    b.add_argument("--cert", required=True, help="our AP certificate (PEM)")
    b.add_argument("--receiver-cert", required=True, help="the receiving AP's certificate (PEM)")
    b.add_argument("--out", required=True, help="where to write the HTTP body")
    b.add_argument("--message-id", help="use this MessageId (default: a new one)")
    b.add_argument("--conversation-id", help="use this ConversationId (default: a new one)")
