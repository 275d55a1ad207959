"""Interoperability with implementations we did not write.

* The PyPI package ``as4`` (an independent Peppol AS4 implementation, run in its own Python >= 3.12
  environment prepared by ``.ci/peers``) builds messages we must read, reads the messages we
  build, and checks the receipts we answer with.
* ``xmlsec1`` (libxmlsec1's command-line tool) verifies the signatures of our receipts.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import as4
import as4._ns as as4_ns
from gateway.dev.pki import DevPki, Issued
from gateway.documents.envelope import read_sbd
from tests.support.as4 import DATA, DOCTYPE, PROCESS, RECEIVER, SENDER, build, sbd, split
from tests.support.paths import PEERS, ROOT

PEER_PYTHON = ROOT / ".data" / "peers" / "as4" / "bin" / "python"
PEER_SCRIPT = PEERS / "as4_peer.py"

needs_peer = pytest.mark.skipif(
    not PEER_PYTHON.exists(), reason="the 'as4' peer environment is missing (run .ci/peers)"
)


def peer(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [str(PEER_PYTHON), "-I", str(PEER_SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def pem(pki: DevPki, stem: str) -> str:
    return str(pki.directory / f"{stem}.cert.pem")


def key(pki: DevPki, stem: str) -> str:
    return str(pki.directory / f"{stem}.key.pem")


def peer_message_args(pki: DevPki, sender: str, receiver: str) -> list[str]:
    return [
        "--key", key(pki, sender), "--cert", pem(pki, sender), "--receiver-cert", pem(pki, receiver),
        "--ubl", str(DATA / "invoice-bis3.xml"), "--sender", SENDER, "--recipient", RECEIVER,
        "--doctype", DOCTYPE, "--process", PROCESS, "--country", "SE",
    ]  # fmt: skip


@needs_peer
def test_message_built_by_the_as4_peer_is_verified_and_decrypted_by_us(dev_pki: DevPki, tmp_path: Path) -> None:
    out = tmp_path / "peer-message"
    built = peer("build", *peer_message_args(dev_pki, "ap2", "ap1"), "--out", str(out))
    ap1 = dev_pki.access_points["ap1"]
    received = as4.parse_user_message(
        out.read_bytes(),
        (tmp_path / "peer-message.content-type").read_text(),
        our_key=ap1.key,
        our_cert=ap1.cert,
    )
    assert received.header.message_id == built["message_id"]
    assert received.header.from_party == "POP000002" and received.header.to_party == "POP000001"
    assert received.signer_certificate == dev_pki.access_points["ap2"].cert
    envelope, document = read_sbd(received.payload or b"")
    assert (envelope.sender, envelope.receiver, envelope.document_type) == (
        SENDER,
        RECEIVER,
        DOCTYPE,
    )
    assert (
        document.findtext("{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}ID") == "INV-2026-0042"
    )


@needs_peer
def test_message_built_by_us_is_accepted_by_the_as4_peer(dev_pki: DevPki, tmp_path: Path) -> None:
    payload = sbd()
    message = build(dev_pki.access_points["ap1"], dev_pki.access_points["ap2"], payload)
    (tmp_path / "ours").write_bytes(message.body)
    (tmp_path / "ours.content-type").write_text(message.content_type)
    result = peer(
        "receive", "--key", key(dev_pki, "ap2"), "--cert", pem(dev_pki, "ap2"),
        "--root", pem(dev_pki, "root-ca"), "--ap-ca", pem(dev_pki, "ap-ca"),
        "--body", str(tmp_path / "ours"), "--signal-out", str(tmp_path / "receipt"),
    )  # fmt: skip
    assert result.get("error") is None
    assert result["state"] == "received"
    assert result["message_id"] == message.header.message_id
    import base64

    assert base64.b64decode(str(result["payload_b64"])) == payload


@needs_peer
def test_receipt_built_by_the_as4_peer_is_verified_by_us(dev_pki: DevPki, tmp_path: Path) -> None:
    message = build(dev_pki.access_points["ap1"], dev_pki.access_points["ap2"])
    (tmp_path / "ours").write_bytes(message.body)
    (tmp_path / "ours.content-type").write_text(message.content_type)
    peer(
        "receive", "--key", key(dev_pki, "ap2"), "--cert", pem(dev_pki, "ap2"),
        "--root", pem(dev_pki, "root-ca"), "--ap-ca", pem(dev_pki, "ap-ca"),
        "--body", str(tmp_path / "ours"), "--signal-out", str(tmp_path / "receipt"),
    )  # fmt: skip
    receipt = as4.parse_signal((tmp_path / "receipt").read_bytes(), (tmp_path / "receipt.content-type").read_text())
    as4.verify_receipt(receipt, message, dev_pki.access_points["ap2"].cert)


@needs_peer
def test_as4_peer_rejects_our_message_after_tampering(dev_pki: DevPki, tmp_path: Path) -> None:
    """Control: the peer really verifies what we send (so the acceptance above means something)."""
    message = build(dev_pki.access_points["ap1"], dev_pki.access_points["ap2"])
    body = message.body.replace(RECEIVER.encode(), b"0192:974760673", 1)
    (tmp_path / "bad").write_bytes(body)
    (tmp_path / "bad.content-type").write_text(message.content_type)
    result = peer(
        "receive", "--key", key(dev_pki, "ap2"), "--cert", pem(dev_pki, "ap2"),
        "--root", pem(dev_pki, "root-ca"), "--ap-ca", pem(dev_pki, "ap-ca"),
        "--body", str(tmp_path / "bad"), "--signal-out", str(tmp_path / "signal"),
    )  # fmt: skip
    assert result["state"] != "received"
    with pytest.raises(as4.EbmsErrorReceived):
        as4.parse_signal((tmp_path / "signal").read_bytes(), "application/soap+xml")


@pytest.fixture
async def our_receiver(dev_pki: DevPki) -> AsyncIterator[tuple[str, list[as4.ReceivedMessage]]]:
    """A minimal receiving endpoint built from the as4 package: parse, trust-check, receipt."""
    ap1: Issued = dev_pki.access_points["ap1"]
    got: list[as4.ReceivedMessage] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg = as4.parse_user_message(body, request.headers["Content-Type"], our_key=ap1.key, our_cert=ap1.cert)
            as4.check_ap_certificate(msg.signer_certificate, [dev_pki.ap_ca.cert])
        except as4.As4Error as exc:
            signal = as4.build_error_signal([exc], None, key=ap1.key, cert=ap1.cert)
            return web.Response(body=signal, content_type="application/soap+xml")
        got.append(msg)
        return web.Response(body=as4.build_receipt(msg, ap1.key, ap1.cert), content_type="application/soap+xml")

    app = web.Application()
    app.router.add_post("/as4", handle)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/as4")), got
    await server.close()


@needs_peer
async def test_as4_peer_sends_to_us_over_http_and_accepts_our_receipt(
    dev_pki: DevPki, our_receiver: tuple[str, list[as4.ReceivedMessage]]
) -> None:
    url, got = our_receiver
    proc = await asyncio.create_subprocess_exec(
        str(PEER_PYTHON), "-I", str(PEER_SCRIPT), "send", *peer_message_args(dev_pki, "ap2", "ap1"), "--url", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    result = json.loads(stdout)
    assert result.get("error") is None
    assert result["state"] == "acknowledged"
    assert got[0].header.message_id == result["message_id"]


needs_xmlsec1 = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 not installed")


def _xmlsec1_verify(document: bytes, cert_pem: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "signed.xml"
    path.write_bytes(document)
    return subprocess.run(
        [
            "xmlsec1", "--verify", "--pubkey-cert-pem", cert_pem,
            "--id-attr:Id", "http://www.w3.org/2003/05/soap-envelope:Body",
            "--id-attr:Id", "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/:Messaging",
            str(path),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def _our_receipt(dev_pki: DevPki) -> bytes:
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    message = build(ap1, ap2)
    received = as4.parse_user_message(message.body, message.content_type, our_key=ap2.key, our_cert=ap2.cert)
    return as4.build_receipt(received, ap2.key, ap2.cert)


@needs_xmlsec1
def test_our_receipt_signature_verifies_with_xmlsec1(dev_pki: DevPki, tmp_path: Path) -> None:
    result = _xmlsec1_verify(_our_receipt(dev_pki), pem(dev_pki, "ap2"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout + result.stderr


@needs_xmlsec1
def test_xmlsec1_rejects_our_receipt_after_tampering(dev_pki: DevPki, tmp_path: Path) -> None:
    receipt = _our_receipt(dev_pki).replace(b"<eb:Timestamp>2", b"<eb:Timestamp>1", 1)
    assert _xmlsec1_verify(receipt, pem(dev_pki, "ap2"), tmp_path).returncode != 0


@needs_xmlsec1
def test_our_signed_error_signal_verifies_with_xmlsec1(dev_pki: DevPki, tmp_path: Path) -> None:
    ap2 = dev_pki.access_points["ap2"]
    signal = as4.build_error_signal([as4.NotServiced("not here")], "m@x", key=ap2.key, cert=ap2.cert)
    result = _xmlsec1_verify(signal, pem(dev_pki, "ap2"), tmp_path)
    assert result.returncode == 0, result.stderr


def _xmlsec1_signed_receipt(dev_pki: DevPki, tmp_path: Path) -> bytes:
    """Our receipt re-signed by xmlsec1 from a template with the signature in the default
    namespace (``<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">``), as other
    implementations write it, inside a document that declares many prefixes."""
    from lxml import etree

    ds, wsse = "http://www.w3.org/2000/09/xmldsig#", as4_ns.WSSE
    root = etree.fromstring(_our_receipt(dev_pki))
    signature = root.find(f".//{{{ds}}}Signature")
    assert signature is not None
    security = signature.getparent()
    assert security is not None
    uris = [r.get("URI") for r in signature.iterfind(f"{{{ds}}}SignedInfo/{{{ds}}}Reference")]
    token_ref = signature.find(f".//{{{wsse}}}Reference")
    assert token_ref is not None and len(uris) == 2
    security.remove(signature)
    exc, sha256 = "http://www.w3.org/2001/10/xml-exc-c14n#", "http://www.w3.org/2001/04/xmlenc#sha256"
    references = "".join(
        f'<Reference URI="{uri}"><Transforms><Transform Algorithm="{exc}"/></Transforms>'
        f'<DigestMethod Algorithm="{sha256}"/><DigestValue/></Reference>'
        for uri in uris
    )
    template = etree.fromstring(
        f'<Signature xmlns="{ds}" Id="SIG-xmlsec1"><SignedInfo><CanonicalizationMethod Algorithm="{exc}"/>'
        f'<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>{references}'
        f'</SignedInfo><SignatureValue/><KeyInfo><wsse:SecurityTokenReference xmlns:wsse="{wsse}">'
        f'<wsse:Reference URI="{token_ref.get("URI")}" ValueType="{token_ref.get("ValueType")}"/>'
        f"</wsse:SecurityTokenReference></KeyInfo></Signature>".encode()
    )
    security.append(template)
    (tmp_path / "tmpl.xml").write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    result = subprocess.run(
        [
            "xmlsec1", "--sign", "--privkey-pem", f"{key(dev_pki, 'ap2')},{pem(dev_pki, 'ap2')}",
            "--id-attr:Id", "http://www.w3.org/2003/05/soap-envelope:Body",
            "--id-attr:Id", "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/:Messaging",
            "--output", str(tmp_path / "signed.xml"), str(tmp_path / "tmpl.xml"),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return (tmp_path / "signed.xml").read_bytes()


@needs_xmlsec1
def test_receipt_signed_by_xmlsec1_in_the_default_namespace_verifies(dev_pki: DevPki, tmp_path: Path) -> None:
    signed = _xmlsec1_signed_receipt(dev_pki, tmp_path)
    assert b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"' in signed
    receipt = as4.parse_signal(signed, as4.SOAP_CONTENT_TYPE)
    assert receipt.signer_certificate == dev_pki.access_points["ap2"].cert


@needs_xmlsec1
def test_receipt_signed_by_xmlsec1_in_the_default_namespace_is_refused_when_tampered(
    dev_pki: DevPki, tmp_path: Path
) -> None:
    signed = _xmlsec1_signed_receipt(dev_pki, tmp_path)
    tampered = signed.replace(b"<eb:Timestamp>2", b"<eb:Timestamp>1", 1)
    assert tampered != signed
    with pytest.raises(as4.InvalidReceipt, match="digest"):
        as4.parse_signal(tampered, as4.SOAP_CONTENT_TYPE)


_ = split


PEPPOL_PY_PYTHON = ROOT / ".data" / "peers" / "peppol-py" / "bin" / "python"
PEPPOL_PY_SCRIPT = PEERS / "peppol_py_peer.py"
needs_peppol_py = pytest.mark.skipif(
    not PEPPOL_PY_PYTHON.exists(),
    reason="the 'peppol-py' peer environment is missing (run .ci/peers)",
)


def peppol_py_args(pki: DevPki, url: str) -> list[str]:
    """peppol-py sends as ap2 to ap1 (see tests/peers/peppol_py_peer.py for what is replaced)."""
    return [
        str(PEPPOL_PY_PYTHON), "-I", str(PEPPOL_PY_SCRIPT), "--url", url,
        "--key", key(pki, "ap2"), "--cert", pem(pki, "ap2"), "--receiver-cert", pem(pki, "ap1"),
        "--ap-ca", pem(pki, "ap-ca"), "--ubl", str(DATA / "invoice-bis3.xml"),
    ]  # fmt: skip


@needs_peppol_py
def test_message_built_by_peppol_py_is_verified_and_decrypted_by_us(dev_pki: DevPki, tmp_path: Path) -> None:
    out = tmp_path / "pp.bin"
    result = subprocess.run(
        [*peppol_py_args(dev_pki, "http://127.0.0.1:9/unused"), "--dryrun-out", str(out)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    ap1 = dev_pki.access_points["ap1"]
    received = as4.parse_user_message(
        out.read_bytes(),
        (tmp_path / "pp.bin.content-type").read_text(),
        our_key=ap1.key,
        our_cert=ap1.cert,
    )
    as4.check_ap_certificate(received.signer_certificate, [dev_pki.ap_ca.cert])
    envelope, _ = read_sbd(received.payload or b"")
    assert envelope.sender == SENDER and envelope.receiver == RECEIVER
    assert received.header.action == "busdox-docid-qns::" + DOCTYPE


async def _run_peppol_py(dev_pki: DevPki, url: str) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(
        *peppol_py_args(dev_pki, url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return json.loads(stdout)  # type: ignore[no-any-return]


@needs_peppol_py
async def test_peppol_py_sends_to_us_over_http_and_accepts_our_receipt(
    dev_pki: DevPki, our_receiver: tuple[str, list[as4.ReceivedMessage]]
) -> None:
    url, got = our_receiver
    result = await _run_peppol_py(dev_pki, url)
    assert result["sent"] is True, result
    assert len(got) == 1 and got[0].header.from_party == "POP000002"


@needs_peppol_py
async def test_peppol_py_reports_our_not_serviced_error(dev_pki: DevPki) -> None:
    """Control: peppol-py really reads our answer, so its acceptance above means something."""
    ap1 = dev_pki.access_points["ap1"]

    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        signal = as4.build_error_signal([as4.NotServiced("not here")], None, key=ap1.key, cert=ap1.cert)
        return web.Response(body=signal, content_type="application/soap+xml")

    app = web.Application()
    app.router.add_post("/as4", refuse)
    server = TestServer(app)
    await server.start_server()
    try:
        result = await _run_peppol_py(dev_pki, str(server.make_url("/as4")))
    finally:
        await server.close()
    assert result["sent"] is False
    assert "PEPPOL:NOT_SERVICED" in str(result["error"])
