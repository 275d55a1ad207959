"""The access point core end to end: two real gateways (each with its own PostgreSQL database,
keys and SMP) discover each other through a real DNS server and exchange signed, encrypted AS4
over HTTP on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

import as4
import smp
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki, issue, name
from gateway.dev.sandbox import COMPANIES, DemoCompany, demo_services
from gateway.directory import queries as directory_queries
from gateway.documents.business import BusinessDocument
from gateway.documents.envelope import build_sbd
from gateway.outbound import queries as outbound_queries
from gateway.outbound.submission import Derived, derive_submission, submit_document
from tests.support.as4 import DOCTYPE, PROCESS
from tests.support.gateways import (
    InProcessGateway,
    free_port,
    in_process_gateway,
    new_database,
    register_company,
    wait_for_state,
)
from tests.support.paths import EXAMPLES

NORWAY = "0192:991825827"  # on AP-A
FINLAND = "0216:003720774740"  # on AP-B


@dataclass
class Network:
    a: InProcessGateway
    b: InProcessGateway
    norway: uuid.UUID
    finland: uuid.UUID


@pytest.fixture
async def network(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[Network]:
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a,
        in_process_gateway(dev_pki, "ap2", await new_database(pg_dsn, template_db), knot) as b,
    ):
        norway = await register_demo(a, COMPANIES[0])
        finland = await register_demo(b, COMPANIES[1])
        yield Network(a, b, norway, finland)


async def register_demo(gw: InProcessGateway, demo: DemoCompany) -> uuid.UUID:
    """The sandbox's demo company, with the same profiles as in `make run`."""
    pid = smp.ParticipantId.parse(demo.participant)
    async with gw.pool.acquire() as conn:
        company = await directory_queries.add_company(conn, demo.name, demo.country, pid.local_id)
        await directory_queries.add_participant(conn, company, pid.scheme, pid.value, demo_services(demo))
    assert gw.runtime.registrar is not None
    await gw.runtime.registrar.register(pid)
    return company


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.xml")))
async def test_every_example_document_is_delivered(network: Network, example: str) -> None:
    derived = derived_example(example)
    sender_is_norway = derived.sender == smp.ParticipantId.parse(NORWAY)
    origin, target, company = (
        (network.a, network.b, network.finland) if sender_is_norway else (network.b, network.a, network.norway)
    )
    job = await submit_document(origin.pool, derived, retry_window=60)
    assert await wait_for_state(origin.pool, job, {"delivered", "failed"}) == "delivered"
    entries = await mailbox(target, company)
    assert [e["document_type"] for e in entries] == [str(derived.document_type)]


def derived_example(example: str, **given: str) -> Derived:
    """An example with its envelope; C1's country is the sending company's, as the API takes it
    (responses carry no postal address under the BIS rules)."""
    data = (EXAMPLES / example).read_bytes()
    sender = given.get("sender") or BusinessDocument.parse(data).sender_endpoint or ""
    return derive_submission(data, country_c1={"0192": "NO", "0216": "FI"}[sender.split(":")[0]], **given)


async def send(gw: InProcessGateway, example: str, **kw: object) -> int:
    derived = derived_example(example)
    return await submit_document(gw.pool, derived, retry_window=gw.settings.retry_window, **kw)  # type: ignore[arg-type]


async def mailbox(gw: InProcessGateway, company: uuid.UUID) -> list[dict[str, object]]:
    rows = await gw.pool.fetch(
        "SELECT m.as4_message_id, m.sender_value, m.receiver_value, m.document_type, m.process, m.country_c1, "
        "m.sending_ap, m.sender_cert_subject, d.content FROM mailbox_entries e "
        "JOIN inbound_messages m ON m.id = e.message_id JOIN documents d ON d.sha256 = m.document_sha256 "
        "WHERE e.company_id = $1 ORDER BY e.id",
        company,
    )
    return [dict(r) for r in rows]


async def test_invoice_reaches_the_receivers_mailbox(network: Network) -> None:
    job = await send(network.a, "invoice.xml")
    assert await wait_for_state(network.a.pool, job, {"delivered", "failed"}) == "delivered"
    entries = await mailbox(network.b, network.finland)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["sender_value"], entry["receiver_value"]) == (NORWAY, FINLAND)
    assert entry["sending_ap"] == "POP000001" and "CN=POP000001" in str(entry["sender_cert_subject"])
    assert entry["country_c1"] == "NO"
    assert b"NS-2026-1001" in entry["content"]  # type: ignore[operator]
    status = await outbound_queries.outbound_status(network.a.pool, job)
    assert status is not None
    assert [s for _, s, _ in status.audit] == ["queued", "sending", "delivered"]
    evidence = await network.a.pool.fetchrow(
        "SELECT receipt, sent_message_sha256 FROM outbound_messages WHERE id = $1", job
    )
    assert evidence["receipt"] and evidence["sent_message_sha256"]
    receipt = as4.parse_signal(evidence["receipt"], as4.SOAP_CONTENT_TYPE)
    assert receipt.ref_to_message_id == entry["as4_message_id"]


async def test_received_document_emits_an_event_in_the_same_transaction(network: Network) -> None:
    job = await send(network.a, "credit-note.xml")
    await wait_for_state(network.a.pool, job, {"delivered"})
    kinds = await network.b.pool.fetch("SELECT kind, payload FROM events WHERE company_id = $1", network.finland)
    assert [k["kind"] for k in kinds] == ["document.received"]


async def test_order_and_order_response_travel_both_ways(network: Network) -> None:
    order = await send(network.b, "order.xml")
    assert await wait_for_state(network.b.pool, order, {"delivered", "failed"}) == "delivered"
    assert len(await mailbox(network.a, network.norway)) == 1
    response = await send(network.a, "order-response.xml")
    assert await wait_for_state(network.a.pool, response, {"delivered", "failed"}) == "delivered"
    entries = await mailbox(network.b, network.finland)
    assert entries[0]["document_type"].endswith("order_response:3::2.1")  # type: ignore[union-attr]


def _message_to_b(
    dev_pki: DevPki,
    receiver: str = FINLAND,
    *,
    signer: object = None,
    sbd_receiver: str | None = None,
    from_party: str = "POP000001",
) -> as4.BuiltMessage:
    from datetime import UTC, datetime

    sbd = build_sbd(
        (EXAMPLES / "invoice.xml").read_bytes(), sender=NORWAY, receiver=sbd_receiver or receiver,
        document_type=DOCTYPE, process=PROCESS, country_c1="NO",
    )  # fmt: skip
    header = as4.UserMessageHeader(
        message_id=as4.new_message_id("test"), conversation_id="c-1", timestamp=datetime.now(UTC),
        from_party=from_party, to_party="POP000002", service=PROCESS, action="busdox-docid-qns::" + DOCTYPE,
        original_sender=NORWAY, final_recipient=receiver,
    )  # fmt: skip
    key = signer or dev_pki.access_points["ap1"]
    return as4.build_user_message(
        header,
        sbd,
        signing_key=key.key,
        signing_cert=key.cert,
        receiver_cert=dev_pki.access_points["ap2"].cert,  # type: ignore[attr-defined]
    )


async def _post(url: str, message: as4.BuiltMessage) -> as4.Receipt:
    async with aiohttp.ClientSession() as session:
        return await as4.send_message(session, url, message)


async def test_duplicate_message_gets_the_same_receipt_and_is_stored_once(network: Network, dev_pki: DevPki) -> None:
    message = _message_to_b(dev_pki)
    first = await _post(network.b.as4_url, message)
    second = await _post(network.b.as4_url, message)
    assert first.raw == second.raw
    assert len(await mailbox(network.b, network.finland)) == 1


async def test_receiver_we_do_not_serve_gets_not_serviced(network: Network, dev_pki: DevPki) -> None:
    with pytest.raises(as4.EbmsErrorReceived) as info:
        await _post(network.b.as4_url, _message_to_b(dev_pki, receiver="0007:2120000787"))
    assert info.value.errors[0].detail == "PEPPOL:NOT_SERVICED"
    assert info.value.errors[0].code == "EBMS:0004"


async def test_untrusted_signer_is_refused(network: Network, dev_pki: DevPki) -> None:
    rogue = issue(name("POP000666", "Rogue", "XX"), None, ca=False)
    with pytest.raises(as4.EbmsErrorReceived) as info:
        await _post(network.b.as4_url, _message_to_b(dev_pki, signer=rogue, from_party="POP000666"))
    assert info.value.errors[0].code == "EBMS:0101"
    assert await mailbox(network.b, network.finland) == []


async def test_envelope_that_disagrees_with_the_header_is_refused(network: Network, dev_pki: DevPki) -> None:
    with pytest.raises(as4.EbmsErrorReceived) as info:
        await _post(network.b.as4_url, _message_to_b(dev_pki, sbd_receiver="0216:003704944842"))
    assert info.value.errors[0].code == "EBMS:0004"
    assert "finalRecipient" in info.value.errors[0].description


async def test_unknown_receiver_fails_at_once_with_the_reason(network: Network) -> None:
    # a participant no test registers (the SML zone is shared by the whole run)
    derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes(), receiver="0192:974760673")
    job = await submit_document(network.a.pool, derived, retry_window=60)
    assert await wait_for_state(network.a.pool, job, {"delivered", "failed"}) == "failed"
    status = await outbound_queries.outbound_status(network.a.pool, job)
    assert status is not None and status.attempts == 1
    assert status.error_code == "receiver_not_registered"


async def test_delivery_is_retried_until_the_receiver_comes_back(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    port = free_port()
    async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a:
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        job = await submit_document(
            a.pool, derived, retry_window=60,
            endpoint_url=f"http://127.0.0.1:{port}/as4", endpoint_cert=dev_pki.access_points["ap2"].cert,
        )  # fmt: skip
        assert await wait_for_state(a.pool, job, {"retrying"}) == "retrying"
        async with in_process_gateway(
            dev_pki, "ap2", await new_database(pg_dsn, template_db), knot, port=port, workers=False
        ) as b:
            finland = await register_company(b, "Suomen Osto Oy", "FI", FINLAND, "INVOICE_AND_CREDIT_NOTE")
            assert await wait_for_state(a.pool, job, {"delivered", "failed"}) == "delivered"
            assert len(await mailbox(b, finland)) == 1
        status = await outbound_queries.outbound_status(a.pool, job)
        assert status is not None and status.attempts >= 2
        assert "retrying" in [s for _, s, _ in status.audit]


async def test_a_refusal_by_the_receiver_is_permanent(network: Network, dev_pki: DevPki) -> None:
    """The Finnish company does not receive catalogue responses: AP-B answers NOT_SERVICED, no retry."""
    derived = derived_example("catalogue-response.xml", sender=NORWAY, receiver=FINLAND)
    job = await submit_document(
        network.a.pool, derived, retry_window=60,
        endpoint_url=network.b.as4_url, endpoint_cert=dev_pki.access_points["ap2"].cert,
    )  # fmt: skip
    assert await wait_for_state(network.a.pool, job, {"delivered", "failed"}) == "failed"
    status = await outbound_queries.outbound_status(network.a.pool, job)
    assert status is not None and status.error_code == "ebms_0004" and status.attempts == 1
    assert "NOT_SERVICED" in (status.last_error or "")


async def test_our_smp_publishes_the_receiving_company(network: Network) -> None:
    route = await network.a.runtime.discovery.find_endpoint(
        __import__("smp").ParticipantId.parse(FINLAND), __import__("smp").DocumentTypeId.parse(DOCTYPE)
    )
    assert route.endpoint.url == network.b.as4_url
    assert route.endpoint.certificate == network.b.runtime.identity.cert


_ = asyncio


async def test_oversized_message_is_refused_with_413_and_an_ebms_error(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    async with in_process_gateway(
        dev_pki,
        "ap2",
        await new_database(pg_dsn, template_db),
        knot,
        workers=False,
        PEPPOL_LIMITS_MAX_MESSAGE_BYTES="4096",
    ) as b:
        message = _message_to_b(dev_pki)
        async with (
            aiohttp.ClientSession() as session,
            session.post(b.as4_url, data=message.body, headers={"Content-Type": message.content_type}) as r,
        ):
            status, answer = r.status, await r.read()
        assert status == 413
        with pytest.raises(as4.EbmsErrorReceived) as info:
            as4.parse_signal(answer, as4.SOAP_CONTENT_TYPE)
        assert "larger than 4096 bytes" in info.value.errors[0].description


async def test_garbage_on_the_as4_endpoint_gets_an_ebms_error_not_a_crash(network: Network) -> None:
    async with aiohttp.ClientSession() as session:
        for body, content_type in (
            (b"\x00\xff" * 50, "multipart/related; boundary=x"),
            (b"<a", "application/soap+xml"),
            (b"", ""),
        ):
            async with session.post(network.b.as4_url, data=body, headers={"Content-Type": content_type}) as r:
                answer = await r.read()
                assert r.status == 200
            with pytest.raises(as4.EbmsErrorReceived):
                as4.parse_signal(answer, as4.SOAP_CONTENT_TYPE)


async def test_a_rebuilt_resend_gets_a_receipt_it_can_verify_and_is_stored_once(
    network: Network, dev_pki: DevPki
) -> None:
    """A sender that crashed after sending rebuilds the message with the same MessageId: new ids
    and timestamp, so new header digests. It must still get a verifiable receipt."""
    from dataclasses import replace

    first = _message_to_b(dev_pki)
    await _post(network.b.as4_url, first)
    ap1 = dev_pki.access_points["ap1"]
    sbd = build_sbd(
        (EXAMPLES / "invoice.xml").read_bytes(), sender=NORWAY, receiver=FINLAND,
        document_type=DOCTYPE, process=PROCESS, country_c1="NO",
    )  # fmt: skip
    again = as4.build_user_message(
        replace(first.header, timestamp=first.header.timestamp), sbd, signing_key=ap1.key, signing_cert=ap1.cert,
        receiver_cert=dev_pki.access_points["ap2"].cert,
    )  # fmt: skip
    assert again.digests != first.digests
    receipt = await _post(network.b.as4_url, again)  # send_message verifies it against `again`
    assert receipt.ref_to_message_id == first.header.message_id
    assert len(await mailbox(network.b, network.finland)) == 1


async def test_a_message_seen_before_gets_a_receipt_whatever_it_says_now(network: Network, dev_pki: DevPki) -> None:
    """Before its envelope is read: the same MessageId again, now with an envelope that no
    longer agrees with the header, is answered as the duplicate it is, and nothing is stored."""
    from dataclasses import replace

    first = _message_to_b(dev_pki)
    await _post(network.b.as4_url, first)
    ap1 = dev_pki.access_points["ap1"]
    sbd = build_sbd(
        (EXAMPLES / "invoice.xml").read_bytes(), sender=NORWAY, receiver="0216:003704944842",
        document_type=DOCTYPE, process=PROCESS, country_c1="NO",
    )  # fmt: skip
    changed = as4.build_user_message(
        replace(first.header), sbd, signing_key=ap1.key, signing_cert=ap1.cert,
        receiver_cert=dev_pki.access_points["ap2"].cert,
    )  # fmt: skip
    receipt = await _post(network.b.as4_url, changed)
    assert receipt.ref_to_message_id == first.header.message_id
    assert len(await mailbox(network.b, network.finland)) == 1


async def test_copies_of_a_message_arriving_at_once_are_stored_once(network: Network, dev_pki: DevPki) -> None:
    message = _message_to_b(dev_pki)
    receipts = await asyncio.gather(*(_post(network.b.as4_url, message) for _ in range(6)))
    assert len({r.raw for r in receipts}) == 1  # every copy gets the receipt of the one stored
    assert len(await mailbox(network.b, network.finland)) == 1
    count = await network.b.pool.fetchval(
        "SELECT count(*) FROM inbound_messages WHERE as4_message_id = $1", message.header.message_id
    )
    assert count == 1
