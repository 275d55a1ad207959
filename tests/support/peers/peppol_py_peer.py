"""Drives the PyPI package `peppol-py` (its own virtual environment) to send one invoice.

Replaced, because they cannot run here, and only these:
* ``peppol_py.wsse.encrypt_as4_document`` shells out to xmlsec1 >= 1.3 (Debian 12 has 1.2.37):
  replaced by the same operation written with `cryptography` (gzip level 6, fresh AES-128 key,
  96-bit IV, IV || ciphertext || tag, key wrapped with RSA-OAEP SHA-256/MGF1-SHA-256).
* ``peppol_py.sender.validate_certificate`` checks against the real Peppol trust store with OCSP:
  replaced by a chain check against the development AP CA.
* ``peppol_py.sender.get_service_info_for_participant_from_smp`` queries the real SML zones:
  replaced by the endpoint URL and certificate given on the command line.
Everything else (SBDH wrapping, AS4 header, WS-Security signature with python-xmlsec, MIME
framing, HTTP POST and its receipt check) is peppol-py's own code.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import peppol_py.as4_sender
import peppol_py.sender
import peppol_py.wsse
from peppol_py.exception import SendPeppolError


def encrypt_with_cryptography(document_content, receiver_cert, xmlsec_path):
    gzipped = gzip.compress(document_content, compresslevel=6)
    digest = base64.b64encode(hashlib.sha256(gzipped).digest()).decode("ascii")
    key = AESGCM.generate_key(bit_length=128)
    iv = os.urandom(12)
    encrypted = iv + AESGCM(key).encrypt(iv, gzipped, None)
    cert = x509.load_pem_x509_certificate(receiver_cert)
    wrapped = cert.public_key().encrypt(
        key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return base64.b64encode(wrapped).decode("ascii"), encrypted, digest


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--receiver-cert", required=True)
    p.add_argument("--ap-ca", required=True)
    p.add_argument("--ubl", required=True)
    p.add_argument("--dryrun-out")
    a = p.parse_args()
    receiver_pem = Path(a.receiver_cert).read_bytes()
    ap_ca = x509.load_pem_x509_certificate(Path(a.ap_ca).read_bytes())

    def validate_with_dev_pki(cert, test):
        x509.load_pem_x509_certificate(cert).verify_directly_issued_by(ap_ca)

    peppol_py.wsse.encrypt_as4_document = encrypt_with_cryptography
    peppol_py.as4_sender.encrypt_as4_document = encrypt_with_cryptography
    peppol_py.sender.validate_certificate = validate_with_dev_pki
    peppol_py.sender.get_service_info_for_participant_from_smp = lambda participant, doctype, **kw: (
        "peppol-transport-as4-v2_0",
        a.url,
        receiver_pem,
    )
    try:
        result = peppol_py.sender.send_peppol_document(
            Path(a.ubl).read_bytes(),
            xmlsec_path="(replaced)",
            keyfile=a.key,
            keyfile_password=None,
            certfile=a.cert,
            document_type_version="2.1",
            dryrun=bool(a.dryrun_out),
        )
    except SendPeppolError as exc:
        json.dump({"sent": False, "error": str(exc)}, sys.stdout)
        return
    if a.dryrun_out:
        body, headers, stats = result
        Path(a.dryrun_out).write_bytes(body)
        Path(a.dryrun_out + ".content-type").write_text(headers["Content-Type"])
        json.dump({"sent": False, "dryrun": True, "stats": stats}, sys.stdout)
        return
    json.dump({"sent": True, "stats": result}, sys.stdout)


if __name__ == "__main__":
    main()
