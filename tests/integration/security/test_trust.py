"""Trusting a peer's AP certificate: chain, validity and revocation through a real OCSP
responder and a real CRL served over HTTP, with caching and the soft/hard-fail policy."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

import as4
from gateway.dev.pki import DevPki, Issued, issue, name
from gateway.security.trust import CertificateTrust, RevocationUnknown, Revoked


@dataclass
class Authority:
    """A CRL and an OCSP responder for the dev AP CA, on loopback."""

    ca: Issued
    url: str = ""
    revoked: set[int] = field(default_factory=set)
    ocsp_up: bool = True
    crl_up: bool = True
    hits: dict[str, int] = field(default_factory=lambda: {"ocsp": 0, "crl": 0})

    def crl(self) -> bytes:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.cert.subject)
            .last_update(now - dt.timedelta(minutes=1))
            .next_update(now + dt.timedelta(hours=1))
        )
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        return builder.sign(self.ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def issue_leaf(self, seat: str) -> Issued:
        return issue(
            name(seat, "Peer AP", "NO"), self.ca, ca=False,
            extensions=[
                x509.AuthorityInformationAccess([
                    x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{self.url}/ocsp"))
                ]),
                x509.CRLDistributionPoints([
                    x509.DistributionPoint([x509.UniformResourceIdentifier(f"{self.url}/ca.crl")], None, None, None)
                ]),
            ],
        )  # fmt: skip


@pytest.fixture
async def authority(dev_pki: DevPki) -> AsyncIterator[Authority]:
    auth = Authority(dev_pki.ap_ca)

    async def crl(request: web.Request) -> web.Response:
        auth.hits["crl"] += 1
        if not auth.crl_up:
            return web.Response(status=503)
        return web.Response(body=auth.crl(), content_type="application/pkix-crl")

    async def responder(request: web.Request) -> web.Response:
        auth.hits["ocsp"] += 1
        if not auth.ocsp_up:
            return web.Response(status=503)
        req = ocsp.load_der_ocsp_request(await request.read())
        now = dt.datetime.now(dt.UTC)
        status = ocsp.OCSPCertStatus.REVOKED if req.serial_number in auth.revoked else ocsp.OCSPCertStatus.GOOD
        # The responder answers for the certificate in the request; it knows its own leaves.
        leaf = auth.leaves[req.serial_number]  # type: ignore[attr-defined]
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf, issuer=auth.ca.cert, algorithm=hashes.SHA1(), cert_status=status,
                this_update=now, next_update=now + dt.timedelta(hours=1),
                revocation_time=now if status == ocsp.OCSPCertStatus.REVOKED else None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, auth.ca.cert)
            .sign(auth.ca.key, hashes.SHA256())
        )  # fmt: skip
        return web.Response(
            body=response.public_bytes(serialization.Encoding.DER), content_type="application/ocsp-response"
        )

    app = web.Application()
    app.router.add_get("/ca.crl", crl)
    app.router.add_post("/ocsp", responder)
    server = TestServer(app)
    await server.start_server()
    auth.url = str(server.make_url("")).rstrip("/")
    auth.leaves = {}  # type: ignore[attr-defined]
    yield auth
    await server.close()


def leaf(auth: Authority, seat: str) -> Issued:
    issued = auth.issue_leaf(seat)
    auth.leaves[issued.cert.serial_number] = issued.cert  # type: ignore[attr-defined]
    return issued


async def test_good_certificate_is_trusted_by_ocsp(authority: Authority, dev_pki: DevPki) -> None:
    trust = CertificateTrust([dev_pki.ap_ca.cert], policy="hard-fail")
    try:
        await trust.check(leaf(authority, "POP000101").cert)
    finally:
        await trust.close()
    assert authority.hits["ocsp"] == 1 and authority.hits["crl"] == 0


async def test_revoked_certificate_is_refused_by_ocsp(authority: Authority, dev_pki: DevPki) -> None:
    peer = leaf(authority, "POP000102")
    authority.revoked.add(peer.cert.serial_number)
    trust = CertificateTrust([dev_pki.ap_ca.cert])
    try:
        with pytest.raises(Revoked, match="OCSP"):
            await trust.check(peer.cert)
    finally:
        await trust.close()


async def test_crl_is_used_when_ocsp_is_down(authority: Authority, dev_pki: DevPki) -> None:
    peer = leaf(authority, "POP000103")
    authority.revoked.add(peer.cert.serial_number)
    authority.ocsp_up = False
    trust = CertificateTrust([dev_pki.ap_ca.cert])
    try:
        with pytest.raises(Revoked, match="CRL"):
            await trust.check(peer.cert)
    finally:
        await trust.close()


async def test_answers_are_cached(authority: Authority, dev_pki: DevPki) -> None:
    peer = leaf(authority, "POP000104")
    trust = CertificateTrust([dev_pki.ap_ca.cert])
    try:
        for _ in range(5):
            await trust.check(peer.cert)
    finally:
        await trust.close()
    assert authority.hits["ocsp"] == 1


async def test_no_answer_is_refused_when_hard_fail(authority: Authority, dev_pki: DevPki) -> None:
    authority.ocsp_up = authority.crl_up = False
    trust = CertificateTrust([dev_pki.ap_ca.cert], policy="hard-fail")
    try:
        with pytest.raises(RevocationUnknown):
            await trust.check(leaf(authority, "POP000105").cert)
    finally:
        await trust.close()


async def test_no_answer_is_accepted_when_soft_fail(authority: Authority, dev_pki: DevPki) -> None:
    authority.ocsp_up = authority.crl_up = False
    trust = CertificateTrust([dev_pki.ap_ca.cert], policy="soft-fail")
    try:
        await trust.check(leaf(authority, "POP000106").cert)
    finally:
        await trust.close()


async def test_crl_signed_by_another_ca_is_ignored(authority: Authority, dev_pki: DevPki) -> None:
    peer = leaf(authority, "POP000107")
    authority.revoked.add(peer.cert.serial_number)
    authority.ocsp_up = False
    authority.ca = dev_pki.smp_ca  # the CRL is now signed by the wrong CA
    trust = CertificateTrust([dev_pki.ap_ca.cert], policy="hard-fail")
    try:
        with pytest.raises(RevocationUnknown):
            await trust.check(peer.cert)
    finally:
        await trust.close()


async def test_expired_and_foreign_certificates_fail_before_revocation(authority: Authority, dev_pki: DevPki) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    expired = issue(
        name("POP000108", "Old AP", "NO"),
        dev_pki.ap_ca,
        ca=False,
        not_before=past,
        not_after=past + dt.timedelta(days=30),
    )
    trust = CertificateTrust([dev_pki.ap_ca.cert])
    try:
        with pytest.raises(as4.FailedAuthentication, match="expired"):
            await trust.check(expired.cert)
        with pytest.raises(as4.FailedAuthentication, match="not issued by a trusted AP CA"):
            await trust.check(dev_pki.smp.cert)
    finally:
        await trust.close()
    assert authority.hits == {"ocsp": 0, "crl": 0}


async def test_a_certificate_trusted_before_is_checked_against_the_time_again(dev_pki: DevPki) -> None:
    """The offline checks of a certificate seen before are remembered, its validity is not."""
    now = dt.datetime.now(dt.UTC)
    short = issue(
        name("POP000111", "Short AP", "NO"), dev_pki.ap_ca, ca=False, not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1),
    )  # fmt: skip
    trust = CertificateTrust([dev_pki.ap_ca.cert], policy="off")
    try:
        await trust.check(short.cert)
        await trust.check(short.cert, now + dt.timedelta(hours=1))
        with pytest.raises(as4.FailedAuthentication, match="expired"):
            await trust.check(short.cert, now + dt.timedelta(days=2))
        with pytest.raises(as4.FailedAuthentication, match="not valid before"):
            await trust.check(short.cert, now - dt.timedelta(days=2))
        trust.trusted_cas = [dev_pki.smp_ca.cert]  # another trust anchor: checked again
        with pytest.raises(as4.FailedAuthentication, match="not issued by a trusted AP CA"):
            await trust.check(short.cert)
    finally:
        await trust.close()


async def test_uncheckable_certificate_is_noted_once_per_certificate(dev_pki: DevPki) -> None:
    """A development certificate names no OCSP responder or CRL: every message between two dev
    gateways would log that again, so it is said once for each certificate."""
    first = issue(name("POP000109", "Dev AP", "NO"), dev_pki.ap_ca, ca=False)
    second = issue(name("POP000110", "Other dev AP", "NO"), dev_pki.ap_ca, ca=False)
    trust = CertificateTrust([dev_pki.ap_ca.cert], policy="soft-fail", cache_seconds=0)
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )  # the suite logs warnings only
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                await trust.check(first.cert)
            trust._status.clear()  # as when the cached answer runs out
            await trust.check(first.cert)
            await trust.check(second.cert)
    finally:
        structlog.configure(**saved)
        await trust.close()
    noted = [e for e in logs if e["event"] == "revocation_not_checkable"]
    assert [e["fingerprint"] for e in noted] == [
        first.cert.fingerprint(hashes.SHA256()).hex(),
        second.cert.fingerprint(hashes.SHA256()).hex(),
    ]
