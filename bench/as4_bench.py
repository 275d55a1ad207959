"""AS4 build (gzip + sign + encrypt) and parse (decrypt + verify + gunzip) throughput on one core,
latency percentiles, and peak memory growth for a 100 MB payload; plus the independent `as4`
package parsing the same messages, for a ratio."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import as4
from bench.report import Figure, Peer
from gateway.dev.pki import DevPki, create_dev_pki
from gateway.documents.envelope import build_sbd

ROOT = Path(__file__).parent.parent
INVOICE = (ROOT / "tests" / "support" / "data" / "invoice-bis3.xml").read_bytes()
PEER_PYTHON = ROOT / ".data" / "peers" / "as4" / "bin" / "python"
PEER_BENCH = Path(__file__).parent / "as4_peer_bench.py"
DOCTYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


def invoice_of_size(size: int) -> bytes:
    """A UBL invoice padded with realistic invoice lines up to about ``size`` bytes."""
    head, _, tail = INVOICE.rpartition(b"</Invoice>")
    line_start = head.index(b"<cac:InvoiceLine>")
    line = head[line_start:]
    out = [head]
    total = len(head) + len(tail) + 10
    n = 1
    while total < size:
        n += 1
        chunk = line.replace(b"<cbc:ID>1</cbc:ID>", b"<cbc:ID>%d</cbc:ID>" % n).replace(
            b"Kontorstol", b"Kontorstol modell %d" % (n * 7919 % 100000)
        )
        out.append(chunk)
        total += len(chunk)
    out.append(b"</Invoice>" + tail)
    return b"".join(out)


def sbd_of_size(size: int) -> bytes:
    return build_sbd(
        invoice_of_size(size - 1200),
        sender="0007:2120000787",
        receiver="0192:991825827",
        document_type=DOCTYPE,
        process=PROCESS,
        country_c1="SE",
    )


def header() -> as4.UserMessageHeader:
    from datetime import UTC, datetime

    return as4.UserMessageHeader(
        message_id=as4.new_message_id("bench"),
        conversation_id="bench",
        timestamp=datetime.now(UTC),
        from_party="POP000001",
        to_party="POP000002",
        service=PROCESS,
        action="busdox-docid-qns::" + DOCTYPE,
        original_sender="0007:2120000787",
        final_recipient="0192:991825827",
    )


def timed(fn: Callable[[], object], seconds: float, min_runs: int = 3) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < min_runs:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def row(label: str, samples: list[float]) -> str:
    mean = statistics.fmean(samples)
    return (
        f"  {label:<26} {1 / mean:>9.1f} msg/s   p50 {pct(samples, 0.5):>8.3f} ms"
        f"   p99 {pct(samples, 0.99):>8.3f} ms   (n={len(samples)})"
    )


def rsa_private_op_ms(pki: DevPki) -> float:
    key = pki.access_points["ap1"].key
    samples = timed(lambda: key.sign(b"x" * 32, padding.PKCS1v15(), hashes.SHA256()), 1.0)
    return statistics.median(samples) * 1000


PEPPOL_PY_PYTHON = ROOT / ".data" / "peers" / "peppol-py" / "bin" / "python"
PEPPOL_PY_BENCH = Path(__file__).parent / "peppol_py_peer_bench.py"
PEPPOL_PY_PEER = ROOT / "tests" / "support" / "peers" / "peppol_py_peer.py"
SENDER, RECEIVER = "0007:2120000787", "0192:991825827"


def _peer_ms(python: Path, script: Path, args: list[str]) -> tuple[float | None, str]:
    """(median ms, why not) of a peer's timing script run with its own Python."""
    if not python.exists():
        return None, f"{python.relative_to(ROOT)} missing (run .ci/peers)"
    result = subprocess.run([str(python), "-I", str(script), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None, f"{script.name} failed: {result.stderr.strip()[-300:]}"
    return float(json.loads(result.stdout)["median_ms"]), ""


def _keys(pki: DevPki, stem: str) -> list[str]:
    d = pki.directory
    return [
        "--key", str(d / f"{stem}.key.pem"), "--cert", str(d / f"{stem}.cert.pem"),
        "--root", str(d / "root-ca.cert.pem"), "--ap-ca", str(d / "ap-ca.cert.pem"),
    ]  # fmt: skip


def peer_parse_ms(pki: DevPki, message: as4.BuiltMessage, seconds: float) -> tuple[float | None, str]:
    """The `as4` package parsing the message we built (decrypt, verify, gunzip, SBDH checks)."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "m.bin"
        body.write_bytes(message.body)
        args = ["--mode", "parse", "--body", str(body), "--content-type", message.content_type]
        return _peer_ms(PEER_PYTHON, PEER_BENCH, [*args, *_keys(pki, "ap2"), "--seconds", str(seconds)])


def peer_build_ms(pki: DevPki, ubl: bytes, seconds: float) -> tuple[float | None, str]:
    """The `as4` package building a message from the bare UBL (it wraps the SBDH itself)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "invoice.xml"
        path.write_bytes(ubl)
        args = [
            "--mode", "build", "--ubl", str(path), "--receiver-cert", str(pki.directory / "ap2.cert.pem"),
            "--sender", SENDER, "--recipient", RECEIVER, "--doctype", DOCTYPE, "--process", PROCESS,
            "--country", "SE",
        ]  # fmt: skip
        return _peer_ms(PEER_PYTHON, PEER_BENCH, [*args, *_keys(pki, "ap1"), "--seconds", str(seconds)])


def peppol_py_build_ms(pki: DevPki, sbd: bytes, seconds: float) -> tuple[float | None, str]:
    """`peppol-py` building a message from the same SBD as ours."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sbd.xml"
        path.write_bytes(sbd)
        d = pki.directory
        args = [
            "--sbd", str(path), "--key", str(d / "ap1.key.pem"), "--cert", str(d / "ap1.cert.pem"),
            "--receiver-cert", str(d / "ap2.cert.pem"), "--peer-script", str(PEPPOL_PY_PEER),
            "--sender", SENDER, "--recipient", RECEIVER, "--doctype", DOCTYPE, "--process", PROCESS,
            "--seconds", str(seconds),
        ]  # fmt: skip
        return _peer_ms(PEPPOL_PY_PYTHON, PEPPOL_PY_BENCH, args)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak_rss_kb() -> int:
    """Reset the kernel's peak-RSS mark (Linux clear_refs 5) and return the current RSS."""
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    return _status_kb("VmHWM")


def sbd_with_attachment(size: int) -> bytes:
    """An invoice carrying an embedded binary document (base64), which barely compresses."""
    import base64
    import os

    blob = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    attachment = (
        "<cac:AdditionalDocumentReference><cbc:ID>att-1</cbc:ID><cac:Attachment>"
        '<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="invoice.pdf">'
        f"{blob}</cbc:EmbeddedDocumentBinaryObject></cac:Attachment>"
        "</cac:AdditionalDocumentReference>"
    ).encode()
    document = INVOICE.replace(b"<cac:AccountingSupplierParty>", attachment + b"<cac:AccountingSupplierParty>", 1)
    return build_sbd(
        document, sender="0007:2120000787", receiver="0192:991825827",
        document_type=DOCTYPE, process=PROCESS, country_c1="SE",
    )  # fmt: skip


def memory_case(pki_dir: str, size: int, binary: bool = False) -> None:
    """Runs in a fresh process so that peak RSS reflects this case alone."""
    from gateway.dev.pki import load_dev_pki

    pki = load_dev_pki(Path(pki_dir))
    a, b = pki.access_points["ap1"], pki.access_points["ap2"]
    payload = sbd_with_attachment(size) if binary else sbd_of_size(size)
    base = reset_peak_rss_kb()
    start = time.perf_counter()
    message = as4.build_user_message(header(), payload, signing_key=a.key, signing_cert=a.cert, receiver_cert=b.cert)
    built_at = time.perf_counter()
    after_build = peak_rss_kb()
    import hashlib

    digest = hashlib.sha256()
    received = as4.parse_user_message(
        message.body, message.content_type, our_key=b.key, our_cert=b.cert,
        max_payload_bytes=size * 2, payload_sink=digest.update,
    )  # fmt: skip
    parsed_at = time.perf_counter()
    after_parse = peak_rss_kb()
    assert digest.digest() == hashlib.sha256(payload).digest()
    print(
        json.dumps(
            {
                "payload": len(payload),
                "wire": len(message.body),
                "payload_size_seen": received.payload_size,
                "build_s": built_at - start,
                "parse_s": parsed_at - built_at,
                "rss_growth_build_mb": (after_build - base) / 1024,
                "rss_growth_total_mb": (after_parse - base) / 1024,
            }
        )
    )


def main() -> list[Figure]:
    print("AS4 message layer (one core)")
    reported: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        pki = create_dev_pki(Path(tmp))
        a, b = pki.access_points["ap1"], pki.access_points["ap2"]
        rsa_ms = rsa_private_op_ms(pki)
        print(f"  RSA-2048 private-key operation: {rsa_ms:.3f} ms (median)")
        reported.append(Figure("as4.rsa_private_op", value=rsa_ms))
        for label, size, seconds in (
            ("10 KB invoice", 10_000, 4.0),
            ("1 MB invoice", 1_000_000, 4.0),
        ):
            payload = sbd_of_size(size)
            message = as4.build_user_message(
                header(), payload, signing_key=a.key, signing_cert=a.cert, receiver_cert=b.cert
            )
            build = timed(
                lambda payload=payload: as4.build_user_message(  # type: ignore[misc]
                    header(), payload, signing_key=a.key, signing_cert=a.cert, receiver_cert=b.cert
                ),
                seconds,
            )
            parse = timed(
                lambda message=message: as4.parse_user_message(  # type: ignore[misc]
                    message.body, message.content_type, our_key=b.key, our_cert=b.cert
                ),
                seconds,
            )
            received = as4.parse_user_message(message.body, message.content_type, our_key=b.key, our_cert=b.cert)
            receipt = as4.build_receipt(received, b.key, b.cert)
            receipt_build = timed(lambda received=received: as4.build_receipt(received, b.key, b.cert), seconds / 2)  # type: ignore[misc]
            receipt_verify = timed(
                lambda receipt=receipt, message=message: as4.verify_receipt(  # type: ignore[misc]
                    as4.parse_signal(receipt, as4.SOAP_CONTENT_TYPE), message, b.cert
                ),
                seconds / 2,
            )
            print(f"{label}: payload {len(payload)} B, on the wire {len(message.body)} B")
            print(row("build (gzip+sign+encrypt)", build))
            print(row("parse (decrypt+verify+gunzip)", parse))
            print(row("receipt build (sign)", receipt_build))
            print(row("receipt verify", receipt_verify))
            both = statistics.median(build) * 1000 + statistics.median(parse) * 1000
            print(f"  build+parse {both:.3f} ms = {both / (2 * rsa_ms):.2f}x its two RSA private ops")
            ours = statistics.median(parse) * 1000
            peer, why = peer_parse_ms(pki, message, seconds)
            if peer is not None:
                print(f"  'as4' package parse: {peer:.3f} ms (median) -> ours is {peer / ours:.1f}x faster")
            else:
                print(f"  'as4' package parse: not measured: {why}")
            if size == 10_000:
                ubl = invoice_of_size(size - 1200)
                built, why_built = peer_build_ms(pki, ubl, seconds)
                py_built, why_py = peppol_py_build_ms(pki, payload, seconds)
                for name, value, reason in (("'as4' package", built, why_built), ("peppol-py", py_built, why_py)):
                    text = f"{value:.3f} ms (median)" if value is not None else f"not measured: {reason}"
                    print(f"  {name} build: {text}")
                reported += [
                    Figure("as4.build_10k", value=statistics.median(build) * 1000, peers=(
                        Peer("as4 pkg", built, why_built, "from the bare UBL: it wraps the SBDH itself"),
                        Peer("peppol-py", py_built, why_py, "its encryption done with `cryptography`, as in the interop tests"),
                    )),
                    Figure("as4.parse_10k", value=ours, peers=(
                        Peer("as4 pkg", peer, why, "its parse also checks the SBDH against its schema"),
                    )),
                ]  # fmt: skip
        for label, binary in (
            ("100 MB invoice, XML lines", False),
            ("100 MB invoice, embedded PDF", True),
        ):
            print(f"{label} (fresh process; peak RSS above the payload the caller holds)")
            code = (
                "from bench.as4_bench import memory_case; "
                f"memory_case({str(pki.directory)!r}, 100_000_000, binary={binary})"
            )
            result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
            if result.returncode != 0:
                print("  failed:", result.stderr[-500:])
                continue
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"  payload {figures['payload'] / 1e6:.1f} MB -> wire {figures['wire'] / 1e6:.2f} MB; "
                f"build {figures['build_s']:.2f} s, parse {figures['parse_s']:.2f} s"
            )
            print(
                f"  peak RSS growth: {figures['rss_growth_build_mb']:.1f} MB in build, "
                f"{figures['rss_growth_total_mb']:.1f} MB in build+parse"
            )
    return reported


if __name__ == "__main__":
    main()
