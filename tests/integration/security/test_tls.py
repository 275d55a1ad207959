"""Outbound HTTPS (AS4 sends, SMP fetches, webhooks) verifies the server certificate and refuses
anything older than TLS 1.2, against real loopback TLS servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import as4
import smp
from as4 import _sender
from gateway.core import tls as gateway_tls
from smp import _client as smp_client
from smp import _tls as smp_tls

# the old-protocol server is the point of these tests
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"


def _server_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed TLS server certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ANSWER)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[Callable[[ssl.TLSVersion], object], Path]]:
    """Start loopback HTTPS servers offering TLS up to a given version; yields (start, CA file)."""
    cert_path, key_path = _server_cert(tmp_path)
    servers: list[asyncio.Server] = []

    async def start(highest: ssl.TLSVersion) -> str:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = highest
        if highest < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # what OpenSSL needs to offer TLS 1.1 at all
        server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        return f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/as4"

    yield start, cert_path  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


def _trusting(ca: Path) -> ssl.SSLContext:
    """The production context (same rules), additionally trusting the test server's certificate."""
    context = as4.new_tls_context()
    context.load_verify_locations(cafile=str(ca))
    return context


async def _tls11_offered(url: str, ca: Path) -> bool:
    """Whether this OpenSSL lets the server speak TLS 1.1 at all (a lenient client asks)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 5)
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    writer.close()
    return True


def _message() -> as4.BuiltMessage:
    # only the body and its type go on the wire; no receipt is ever read here
    return as4.BuiltMessage(header=None, body=b"x", content_type="text/plain", digests={}, payload_content_id="p")  # type: ignore[arg-type]


@pytest.mark.parametrize("context", [as4.tls_context(), smp_tls.tls_context(), gateway_tls.tls_context()])
def test_every_outbound_context_verifies_and_needs_tls_1_2(context: ssl.SSLContext) -> None:
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


async def test_an_as4_send_refuses_a_tls_1_1_server(tls_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    start, ca = tls_server
    old = await start(ssl.TLSVersion.TLSv1_1)
    if not await _tls11_offered(old, ca):
        pytest.skip("this OpenSSL cannot offer TLS 1.1; the minimum_version test covers the rule")
    modern = await start(ssl.TLSVersion.TLSv1_3)
    monkeypatch.setattr(_sender, "tls_context", lambda: _trusting(ca))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(as4.TransportError) as caught:
            await as4.send_message(session, old, _message(), timeout=10)
        assert "SSL" in str(caught.value) or "protocol" in str(caught.value).lower()
        # the same client reaches a TLS 1.2+ server (it answers, but not with a receipt)
        with pytest.raises(as4.HttpStatusError):
            await as4.send_message(session, modern, _message(), timeout=10)


async def test_an_smp_fetch_refuses_a_tls_1_1_server(tls_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    start, ca = tls_server
    old = await start(ssl.TLSVersion.TLSv1_1)
    if not await _tls11_offered(old, ca):
        pytest.skip("this OpenSSL cannot offer TLS 1.1; the minimum_version test covers the rule")
    monkeypatch.setattr(smp_client, "tls_context", lambda: _trusting(ca))
    client = smp.SmpClient(smp.SmlLookup("sml.local.test"), smp_trust=[])
    try:
        with pytest.raises(smp.SmpUnavailable, match=r"SSL|protocol"):
            await client._get(old)
    finally:
        await client.close()


async def test_an_unverifiable_server_certificate_is_refused(tls_server) -> None:  # type: ignore[no-untyped-def]
    start, _ = tls_server
    url = await start(ssl.TLSVersion.TLSv1_3)  # a self-signed certificate no CA store trusts
    async with aiohttp.ClientSession() as session:
        with pytest.raises(as4.TransportError, match="certificate verify failed"):
            await as4.send_message(session, url, _message(), timeout=10)
