"""Times the independent `as4` package parsing one message, or building one from a UBL document
(run with its own Python). Its build takes the bare UBL and wraps it in the SBDH itself."""

import argparse
import json
import statistics
import time
from pathlib import Path

from as4.peppol import (
    BusdoxDocidQnsDocumentIdentifier,
    PeppolAS4MessageBuilderArgs,
    PeppolAS4Profile,
    PeppolSendingExchange,
    create_peppol_external_party,
    create_peppol_internal_party,
    parse_peppol_message,
    peppol_security_policy,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from as4 import AS4LocalPrivateKey

p = argparse.ArgumentParser()
for opt in ("--key", "--cert", "--root", "--ap-ca", "--seconds"):
    p.add_argument(opt, required=True)
p.add_argument("--mode", choices=("parse", "build"), default="parse")
p.add_argument("--body")
p.add_argument("--content-type")
p.add_argument("--ubl")
p.add_argument("--receiver-cert")
for opt in ("--sender", "--recipient", "--doctype", "--process", "--country"):
    p.add_argument(opt)
a = p.parse_args()


def cn(c: x509.Certificate) -> str:
    return str(c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


cert = x509.load_pem_x509_certificate(Path(a.cert).read_bytes())
key = serialization.load_pem_private_key(Path(a.key).read_bytes(), None)
party = create_peppol_internal_party(cn(cert), cert, AS4LocalPrivateKey(key))
samples = []
deadline = time.perf_counter() + float(a.seconds)
if a.mode == "parse":
    policy = peppol_security_policy(
        x509.load_pem_x509_certificate(Path(a.root).read_bytes()),
        intermediates=[x509.load_pem_x509_certificate(Path(a.ap_ca).read_bytes())],
    )
    body = Path(a.body).read_bytes()
    headers = {"Content-Type": a.content_type}
    while time.perf_counter() < deadline or len(samples) < 3:
        start = time.perf_counter()
        exchange = parse_peppol_message(headers, body, party, security_policy=policy)
        samples.append(time.perf_counter() - start)
        if str(exchange.state) != "received":
            raise SystemExit(f"peer did not accept the message: {exchange.message.parse_error}")
else:
    ubl = Path(a.ubl).read_bytes()
    remote_cert = x509.load_pem_x509_certificate(Path(a.receiver_cert).read_bytes())
    remote = create_peppol_external_party(cn(remote_cert), remote_cert)
    n = 0
    while time.perf_counter() < deadline or len(samples) < 3:
        n += 1
        start = time.perf_counter()
        exchange = PeppolSendingExchange(profile=PeppolAS4Profile, local_party=party, remote_party=remote)
        args = PeppolAS4MessageBuilderArgs(
            sender=a.sender,
            recipient=a.recipient,
            document_type_identifier=BusdoxDocidQnsDocumentIdentifier.from_identifier_value(a.doctype),
            document_identification_instance_identifier=f"bench-{n}",
            process_identifier=a.process,
            c1_country_id=a.country,
        )
        exchange.build(ubl, args)
        samples.append(time.perf_counter() - start)
print(json.dumps({"median_ms": statistics.median(samples) * 1000, "n": len(samples)}))
