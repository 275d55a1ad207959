"""SMP publishing and discovery end to end: our SMP over HTTP, a real DNS server for the SML,
signature checks, endpoint choice, caching; and xmlsec1 as an independent signer/verifier."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.outbound import outcome
from gateway.outbound.errors import Permanent
from smp import (
    DocumentTypeNotSupported,
    EndpointNotActive,
    InsecureEndpoint,
    LocalSml,
    NotRegistered,
    ParticipantId,
    ParticipantUnknown,
    ProcessId,
    SignatureInvalid,
    SmlLookup,
    SmpClient,
    UntrustedSmpCertificate,
    build_signed_redirect,
    build_signed_service_metadata,
    profile_services,
    smp_application,
)
from smp._sml import SmpLocation
from tests.support.services import SML_ZONE
from tests.support.smp import MemorySource, metadata

INVOICE = profile_services("INVOICE_AND_CREDIT_NOTE")[0]
CREDIT_NOTE = profile_services("INVOICE_AND_CREDIT_NOTE")[1]
ORDER = profile_services("ORDER")[0]
NORWAY = ParticipantId.parse("0192:991825827")


@pytest.fixture
async def smp_server(dev_pki: DevPki) -> AsyncIterator[tuple[str, MemorySource]]:
    source = MemorySource()
    app = smp_application(source, dev_pki.smp.key, dev_pki.smp.cert)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), source
    await server.close()


async def publish(
    knot: KnotDns,
    smp_url: str,
    source: MemorySource,
    pki: DevPki,
    participant: ParticipantId,
    *docs,
    **kw,
) -> None:  # type: ignore[no-untyped-def]
    source.services[participant] = {d.document_type: metadata(pki, participant, d, **kw) for d in (docs or (INVOICE,))}
    await register_at(knot, smp_url, participant)


async def register_at(knot: KnotDns, smp_url: str, participant: ParticipantId) -> None:
    await LocalSml(SML_ZONE, knot.address, smp_url, key_name=knot.key_name, key_secret=knot.secret).register(
        participant
    )


def client(knot: KnotDns, pki: DevPki, **kw) -> SmpClient:  # type: ignore[no-untyped-def]
    return SmpClient(SmlLookup(SML_ZONE, knot.address), smp_trust=[pki.smp_ca.cert], **kw)


async def test_endpoint_is_found_through_sml_and_smp(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    await publish(knot, url, source, dev_pki, NORWAY, INVOICE, CREDIT_NOTE)
    c = client(knot, dev_pki)
    try:
        route = await c.find_endpoint(NORWAY, INVOICE.document_type, INVOICE.process)
    finally:
        await c.close()
    assert route.endpoint.url == "https://ap.example/as4"
    assert route.endpoint.certificate == dev_pki.access_points["ap1"].cert
    assert route.smp_url == url and route.smp_certificate == dev_pki.smp.cert
    assert any("signature verified" in s for s in route.steps)


async def test_service_group_lists_the_published_document_types(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    participant = ParticipantId.parse("0007:2120000787")
    await publish(knot, url, source, dev_pki, participant, INVOICE, ORDER)
    c = client(knot, dev_pki)
    try:
        _, doctypes = await c.service_group(participant)
    finally:
        await c.close()
    assert set(doctypes) == {INVOICE.document_type, ORDER.document_type}


async def test_unsupported_document_type_is_reported(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    participant = ParticipantId.parse("0216:003720774740")
    await publish(knot, url, source, dev_pki, participant, INVOICE)
    c = client(knot, dev_pki)
    try:
        with pytest.raises(DocumentTypeNotSupported):
            await c.find_endpoint(participant, ORDER.document_type)
        with pytest.raises(DocumentTypeNotSupported, match="process"):
            await c.find_endpoint(participant, INVOICE.document_type, ProcessId.parse("urn:other:process"))
    finally:
        await c.close()


async def test_participant_in_sml_but_not_in_smp_is_unknown(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, _ = smp_server
    participant = ParticipantId.parse("0106:87654321")
    await register_at(knot, url, participant)
    c = client(knot, dev_pki)
    try:
        with pytest.raises(ParticipantUnknown):
            await c.find_endpoint(participant, INVOICE.document_type)
    finally:
        await c.close()


async def test_participant_not_in_sml_is_not_registered(knot, dev_pki) -> None:  # type: ignore[no-untyped-def]
    c = client(knot, dev_pki)
    try:
        with pytest.raises(NotRegistered):
            await c.find_endpoint(ParticipantId.parse("0088:5790000435968"), INVOICE.document_type)
    finally:
        await c.close()


async def test_expired_endpoint_is_not_used(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    participant = ParticipantId.parse("0184:13585628")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    await publish(knot, url, source, dev_pki, participant, INVOICE, expiration=past)
    c = client(knot, dev_pki)
    try:
        with pytest.raises(EndpointNotActive):
            await c.find_endpoint(participant, INVOICE.document_type)
    finally:
        await c.close()


async def test_smp_signed_by_an_untrusted_certificate_is_refused(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    participant = ParticipantId.parse("0208:0566988259")
    await publish(knot, url, source, dev_pki, participant)
    c = SmpClient(SmlLookup(SML_ZONE, knot.address), smp_trust=[dev_pki.ap_ca.cert])
    try:
        with pytest.raises(UntrustedSmpCertificate):
            await c.find_endpoint(participant, INVOICE.document_type)
    finally:
        await c.close()


async def _serve(handler) -> TestServer:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_tampered_smp_answer_fails_its_signature(knot, dev_pki) -> None:  # type: ignore[no-untyped-def]
    participant = ParticipantId.parse("9925:BE0566988259")
    signed = build_signed_service_metadata(metadata(dev_pki, participant), dev_pki.smp.key, dev_pki.smp.cert)
    forged = signed.replace(b"https://ap.example/as4", b"https://evil.example/as4")

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=forged, content_type="text/xml")

    server = await _serve(handler)
    await register_at(knot, str(server.make_url("")), participant)
    c = client(knot, dev_pki)
    try:
        with pytest.raises(SignatureInvalid):
            await c.find_endpoint(participant, INVOICE.document_type)
    finally:
        await c.close()
        await server.close()


async def test_redirect_is_followed_once_to_the_announced_smp(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    target_url, source = smp_server
    participant = ParticipantId.parse("9944:NL002455799B11")
    source.services[participant] = {
        INVOICE.document_type: metadata(dev_pki, participant, url="https://moved.example/as4")
    }
    href = f"{target_url}/{participant.url_segment}/services/{INVOICE.document_type.url_segment}"
    redirect = build_signed_redirect(href, dev_pki.smp.cert.subject.rfc4514_string(), dev_pki.smp.key, dev_pki.smp.cert)

    async def old_smp(request: web.Request) -> web.Response:
        return web.Response(body=redirect, content_type="text/xml")

    server = await _serve(old_smp)
    await register_at(knot, str(server.make_url("")), participant)
    c = client(knot, dev_pki)
    try:
        route = await c.find_endpoint(participant, INVOICE.document_type)
    finally:
        await c.close()
        await server.close()
    assert route.endpoint.url == "https://moved.example/as4"
    assert any(s.startswith("redirect to") for s in route.steps)


async def test_concurrent_lookups_share_one_dns_query_and_one_fetch(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    participant = ParticipantId.parse("0192:745707327")
    await publish(knot, url, source, dev_pki, participant)
    c = client(knot, dev_pki)
    try:
        routes = await asyncio.gather(*(c.find_endpoint(participant, INVOICE.document_type) for _ in range(500)))
        assert len({r.endpoint.url for r in routes}) == 1
        assert c.sml.queries == 1 and c.fetches == 1
        await c.find_endpoint(participant, INVOICE.document_type)
        assert c.fetches == 1  # cached
    finally:
        await c.close()


async def test_answers_expire_after_their_ttl(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    participant = ParticipantId.parse("0088:7300010000001")
    await publish(knot, url, source, dev_pki, participant)
    now = [1000.0]
    c = client(knot, dev_pki, ttl=60, negative_ttl=5, clock=lambda: now[0])
    try:
        await c.find_endpoint(participant, INVOICE.document_type)
        with pytest.raises(DocumentTypeNotSupported):
            await c.find_endpoint(participant, ORDER.document_type)
        fetches = c.fetches
        with pytest.raises(DocumentTypeNotSupported):
            await c.find_endpoint(participant, ORDER.document_type)
        assert c.fetches == fetches  # negative answer cached
        now[0] += 61
        await c.find_endpoint(participant, INVOICE.document_type)
        assert c.fetches == fetches + 1
    finally:
        await c.close()


async def test_cache_is_bounded(knot, dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    url, source = smp_server
    participants = [ParticipantId.parse(f"9915:bounded{i}") for i in range(5)]
    for p in participants:
        await publish(knot, url, source, dev_pki, p)
    c = client(knot, dev_pki, max_entries=3)
    try:
        for p in participants:
            await c.find_endpoint(p, INVOICE.document_type)
        assert len(c._cache) == 3
    finally:
        await c.close()


async def test_smp_server_decodes_lower_case_percent_escapes_and_rejects_bad_ids(dev_pki, smp_server) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    url, source = smp_server
    participant = ParticipantId.parse("0192:991825827")
    source.services[participant] = {INVOICE.document_type: metadata(dev_pki, participant)}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/iso6523-actorid-upis%3a%3a0192%3a991825827") as r:
            assert r.status == 200 and r.content_type == "text/xml"
            assert b"ServiceMetadataReference" in await r.read()
        async with session.get(f"{url}/iso6523-actorid-upis%3A%3A0192%3A991825828") as r:
            assert r.status == 400
        async with session.get(f"{url}/iso6523-actorid-upis%3A%3A0007%3A2120000787") as r:
            assert r.status == 404


# -- xmlsec1: an independent implementation signs and verifies ------------------------------------


async def test_an_http_endpoint_is_refused_in_a_peppol_zone(dev_pki, smp_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The Peppol test zone, its SML answer stood in by our local SMP; the SMP names an http:// endpoint.
    url, source = smp_server
    source.services[NORWAY] = {INVOICE.document_type: metadata(dev_pki, NORWAY, INVOICE, url="http://ap.example/as4")}
    sml = SmlLookup("test")

    async def locate(participant: ParticipantId) -> SmpLocation:
        return SmpLocation(dns_name="stand-in", url=url)

    monkeypatch.setattr(sml, "locate", locate)
    c = SmpClient(sml, smp_trust=[dev_pki.smp_ca.cert])
    try:
        with pytest.raises(InsecureEndpoint) as caught:
            await c.find_endpoint(NORWAY, INVOICE.document_type, INVOICE.process)
    finally:
        await c.close()
    failure = outcome.discovery_failure(caught.value)
    assert isinstance(failure, Permanent) and failure.code == "endpoint_not_https"
    assert "'http://ap.example/as4' from the SMP is not https://" in failure.reason
    assert "requires TLS" in failure.reason
