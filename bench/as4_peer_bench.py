"""Times the independent `as4` package parsing one message (run with its own Python)."""

import argparse
import json
import statistics
import time
from pathlib import Path

from as4.peppol import create_peppol_internal_party, parse_peppol_message, peppol_security_policy
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from as4 import AS4LocalPrivateKey

p = argparse.ArgumentParser()
for opt in ("--body", "--content-type", "--key", "--cert", "--root", "--ap-ca", "--seconds"):
    p.add_argument(opt, required=True)
a = p.parse_args()
cert = x509.load_pem_x509_certificate(Path(a.cert).read_bytes())
key = serialization.load_pem_private_key(Path(a.key).read_bytes(), None)
cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
party = create_peppol_internal_party(cn, cert, AS4LocalPrivateKey(key))
policy = peppol_security_policy(
    x509.load_pem_x509_certificate(Path(a.root).read_bytes()),
    intermediates=[x509.load_pem_x509_certificate(Path(a.ap_ca).read_bytes())],
)
body = Path(a.body).read_bytes()
headers = {"Content-Type": a.content_type}
samples = []
deadline = time.perf_counter() + float(a.seconds)
while time.perf_counter() < deadline or len(samples) < 3:
    start = time.perf_counter()
    exchange = parse_peppol_message(headers, body, party, security_policy=policy)
    samples.append(time.perf_counter() - start)
    if str(exchange.state) != "received":
        raise SystemExit(f"peer did not accept the message: {exchange.message.parse_error}")
print(json.dumps({"median_ms": statistics.median(samples) * 1000, "n": len(samples)}))
