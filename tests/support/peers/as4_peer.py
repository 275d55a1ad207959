"""Drives the independent PyPI `as4` package (run with its own Python >= 3.12).

Commands print one JSON object on stdout. Used only by the interop tests.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from as4 import AS4LocalPrivateKey
from as4.peppol import (
    PeppolAS4MessageBuilderArgs,
    PeppolAS4Profile,
    PeppolSendingExchange,
    BusdoxDocidQnsDocumentIdentifier,
    create_peppol_external_party,
    create_peppol_internal_party,
    parse_peppol_message,
    peppol_security_policy,
)


def cert(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def cn(c: x509.Certificate) -> str:
    return c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def local_party(key_path: str, cert_path: str):
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
    c = cert(cert_path)
    return create_peppol_internal_party(cn(c), c, AS4LocalPrivateKey(key))


def sending_exchange(a: argparse.Namespace) -> tuple[PeppolSendingExchange, dict, bytes]:
    remote_cert = cert(a.receiver_cert)
    exchange = PeppolSendingExchange(
        profile=PeppolAS4Profile,
        local_party=local_party(a.key, a.cert),
        remote_party=create_peppol_external_party(cn(remote_cert), remote_cert),
    )
    args = PeppolAS4MessageBuilderArgs(
        sender=a.sender,
        recipient=a.recipient,
        document_type_identifier=BusdoxDocidQnsDocumentIdentifier.from_identifier_value(a.doctype),
        document_identification_instance_identifier=a.instance,
        process_identifier=a.process,
        c1_country_id=a.country,
    )
    headers, body = exchange.build(Path(a.ubl).read_bytes(), args)
    return exchange, headers, body


def cmd_build(a: argparse.Namespace) -> dict:
    exchange, headers, body = sending_exchange(a)
    Path(a.out).write_bytes(body)
    content_type = {k.lower(): v for k, v in headers.items()}["content-type"]
    Path(a.out + ".content-type").write_text(content_type)
    return {"message_id": exchange.message_id, "headers": headers}


def cmd_send(a: argparse.Namespace) -> dict:
    exchange, headers, body = sending_exchange(a)
    request = urllib.request.Request(a.url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = response.read()
    result = {"message_id": exchange.message_id}
    try:
        exchange.receive_signal(answer)
        result["state"] = str(exchange.state)
    except Exception as exc:  # report, the test decides
        result["state"] = str(exchange.state)
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def cmd_receive(a: argparse.Namespace) -> dict:
    party = local_party(a.key, a.cert)
    policy = peppol_security_policy(cert(a.root), intermediates=[cert(a.ap_ca)])
    body = Path(a.body).read_bytes()
    content_type = Path(a.body + ".content-type").read_text().strip()
    exchange = parse_peppol_message({"Content-Type": content_type}, body, party, security_policy=policy)
    message = exchange.message
    result: dict = {"state": str(exchange.state), "message_id": exchange.message_id}
    if message is not None and message.parse_error is not None:
        result["error"] = str(message.parse_error)
    if message is not None and message.decrypted_data:
        payload = next(iter(message.decrypted_data.values()))
        result["payload_b64"] = base64.b64encode(bytes(payload)).decode()
    headers, signal = exchange.build_signal()
    Path(a.signal_out).write_bytes(signal)
    Path(a.signal_out + ".content-type").write_text(
        {k.lower(): v for k, v in headers.items()}.get("content-type", "application/soap+xml")
    )
    return result


def cmd_serve(a: argparse.Namespace) -> dict:
    """An AS4 receiving endpoint built on the `as4` package; logs each message as a JSON line."""
    import http.server

    party = local_party(a.key, a.cert)
    policy = peppol_security_policy(cert(a.root), intermediates=[cert(a.ap_ca)])
    log_path = Path(a.log)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            exchange = parse_peppol_message(
                {"Content-Type": self.headers.get("Content-Type", "")}, body, party, security_policy=policy
            )
            message = exchange.message
            entry = {"state": str(exchange.state), "message_id": exchange.message_id}
            if message is not None and message.parse_error is not None:
                entry["error"] = str(message.parse_error)
            with log_path.open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
            headers, signal = exchange.build_signal()
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(signal)))
            self.end_headers()
            self.wfile.write(signal)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", int(a.port)), Handler)
    print(json.dumps({"listening": int(a.port)}), flush=True)
    server.serve_forever()
    return {}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("build", "send"):
        s = sub.add_parser(name)
        s.add_argument("--key", required=True)
        s.add_argument("--cert", required=True)
        s.add_argument("--receiver-cert", required=True)
        s.add_argument("--ubl", required=True)
        s.add_argument("--sender", required=True)
        s.add_argument("--recipient", required=True)
        s.add_argument("--doctype", required=True)
        s.add_argument("--process", required=True)
        s.add_argument("--country", required=True)
        s.add_argument("--instance", default="a6b8c0d2-0000-4000-8000-000000000001")
        if name == "build":
            s.add_argument("--out", required=True)
        else:
            s.add_argument("--url", required=True)
    s = sub.add_parser("receive")
    for opt in ("--key", "--cert", "--root", "--ap-ca", "--body", "--signal-out"):
        s.add_argument(opt, required=True)
    s = sub.add_parser("serve")
    for opt in ("--key", "--cert", "--root", "--ap-ca", "--port", "--log"):
        s.add_argument(opt, required=True)
    a = p.parse_args()
    handler = {"build": cmd_build, "send": cmd_send, "receive": cmd_receive, "serve": cmd_serve}[a.cmd]
    json.dump(handler(a), sys.stdout)


if __name__ == "__main__":
    main()
