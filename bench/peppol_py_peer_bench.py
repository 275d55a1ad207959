"""Times the PyPI package `peppol-py` building one AS4 message from an SBD (run with its own
Python): its envelope, its WS-Security signature (python-xmlsec, the key read from its file on
every message as peppol-py does) and its MIME framing. Its encryption step shells out to an
xmlsec1 newer than Debian's, so the interop peer's stand-in (the same operation written with
`cryptography`) is used, exactly as in the interop tests."""

import argparse
import datetime
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import peppol_py.as4_sender
import peppol_py.sender

p = argparse.ArgumentParser()
for opt in ("--sbd", "--key", "--cert", "--receiver-cert", "--peer-script", "--seconds"):
    p.add_argument(opt, required=True)
for opt in ("--sender", "--recipient", "--doctype", "--process"):
    p.add_argument(opt, required=True)
a = p.parse_args()

spec = importlib.util.spec_from_file_location("peppol_py_peer", a.peer_script)
assert spec is not None and spec.loader is not None
peer = importlib.util.module_from_spec(spec)
sys.modules["peppol_py_peer"] = peer
spec.loader.exec_module(peer)
peppol_py.as4_sender.encrypt_as4_document = peer.encrypt_with_cryptography

sbd = Path(a.sbd).read_bytes()
sender_cert = Path(a.cert).read_bytes()
receiver_cert = Path(a.receiver_cert).read_bytes()
our_seat = peppol_py.sender.get_common_name_from_certificate(sender_cert)
their_seat = peppol_py.sender.get_common_name_from_certificate(receiver_cert)
samples = []
deadline = time.perf_counter() + float(a.seconds)
while time.perf_counter() < deadline or len(samples) < 3:
    start = time.perf_counter()
    stamp = datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0).isoformat()
    body, headers = peppol_py.as4_sender.get_headers_and_body_for_posting_as4_document(
        sbd, None, stamp, a.doctype, a.process, a.sender, a.recipient, their_seat,
        "(replaced)", a.key, None, sender_cert, receiver_cert, our_seat,
    )  # fmt: skip
    samples.append(time.perf_counter() - start)
    assert body and headers["Content-Type"].startswith("multipart/related")
print(json.dumps({"median_ms": statistics.median(samples) * 1000, "n": len(samples)}))
