"""Message Level Status service levels and rules between two real access points: the MLS-1 and
MLS-2 figures per month and partner, warnings as a deadline nears (with an injected clock), a
positive MLS on the ERP's acknowledgement or as AB before the deadline, the fallback from an
MLS_TO that fails to the sending provider's SPID, and an MLS that waits for a receiver that
cannot be resolved."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree

import smp
from gateway.documents.envelope import build_sbd
from gateway.duties import queries as duties_queries
from gateway.duties.mls_levels import MLS_1, MLS_2
from gateway.duties.mls_watch import MlsWatch
from gateway.duties.responses import build_mls
from gateway.inbound.processing import MLS_STATES
from gateway.inbound.queries import MlsSubject
from gateway.outbound.submission import derive_submission, submit_document
from tests.integration.duties import test_network_duties as duties
from tests.integration.duties.test_network_duties import FINLAND, NORWAY, Pair, document, eventually
from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
pair = duties.pair  # the two gateways, as the network duties tests use them


def invoice(number: int, *, mls_type: str | None = "ALWAYS_SEND", mls_to: str | None = None) -> bytes:
    """The example invoice (its own ID) in an envelope asking for an MLS."""
    data = (EXAMPLES / "invoice.xml").read_bytes().replace(b"NS-2026-1001", f"NS-MLS-{number}".encode())
    derived = derive_submission(data)
    return build_sbd(
        data, sender=derived.sender.value, receiver=derived.receiver.value, document_type=derived.document_type.value,
        process=derived.process.value, country_c1="NO", mls_to=mls_to, mls_type=mls_type,
    )  # fmt: skip


async def send_sbd(pair: Pair, sbd: bytes) -> int:
    return await submit_document(pair.a.pool, derive_submission(sbd), retry_window=120, company_id=pair.norway_id)


async def mls_of(pair: Pair, job: int) -> dict[str, Any] | None:
    doc = await document(pair.norway, f"s{job}")
    return doc.get("mls") or None  # type: ignore[no-any-return]


async def inbound(pair: Pair, job: int) -> Any:
    instance = await pair.a.pool.fetchval("SELECT instance_identifier FROM outbound_messages WHERE id = $1", job)
    return await pair.b.pool.fetchrow("SELECT * FROM inbound_messages WHERE instance_identifier = $1", instance)


async def operator_events(gw: Any, kind: str) -> list[dict[str, Any]]:
    rows = await gw.pool.fetch("SELECT payload FROM events WHERE company_id IS NULL AND kind = $1", kind)
    return [json.loads(r["payload"]) for r in rows]


async def test_service_levels_warnings_and_the_positive_mls_on_acknowledge(pair: Pair) -> None:
    status, body = await pair.finland.call(
        "PATCH", f"/v1/companies/{pair.finland_id}", json={"positive_mls": "on_acknowledge"}
    )
    assert status == 200 and body["data"]["positive_mls"] == "on_acknowledge"
    acked, held = await send_sbd(pair, invoice(1)), await send_sbd(pair, invoice(2))
    quiet = await send_sbd(pair, invoice(3, mls_type=None))  # FAILURE_ONLY, accepted: no MLS owed

    async def processed() -> bool:
        rows = [await inbound(pair, j) for j in (acked, held, quiet)]
        return all(r is not None and r["processing"] == "done" for r in rows)

    await eventually(processed)
    assert (await inbound(pair, acked))["mls_held"] == "AB" and (await inbound(pair, quiet))["mls_held"] is None
    assert await pair.b.pool.fetchval("SELECT count(*) FROM outbound_messages WHERE kind = 'mls'") == 0

    # The ERP acknowledges one: its AP goes out now.
    entry = await pair.b.pool.fetchval(
        "SELECT e.id FROM mailbox_entries e WHERE e.message_id = $1", (await inbound(pair, acked))["id"]
    )
    status, _ = await pair.finland.call("POST", f"/v1/documents/r{entry}/acknowledge")
    assert status == 200
    assert (await eventually(lambda: mls_of(pair, acked)))["code"] == "AP"

    # The other one is still waiting; an injected clock moves time on.
    start = datetime.now(UTC)
    total, _ = await duties_queries.mls_figures(
        pair.b.pool, MLS_1, start - timedelta(hours=1), start + timedelta(hours=1), MLS_STATES
    )
    assert total.count == 2 and total.waiting + total.with_mls == 2 and total.overdue == 0
    clock = [start + timedelta(minutes=10)]
    watch_b = MlsWatch(pair.b.pool, MLS_STATES, send_held_due=pair.b.services.processor.send_held_due,
                       clock=lambda: clock[0])  # fmt: skip
    watch_a = MlsWatch(pair.a.pool, MLS_STATES, clock=lambda: clock[0])
    await watch_b.step()
    await watch_a.step()
    assert await operator_events(pair.b, "mls.deadline_near") == []
    assert (await inbound(pair, held))["mls_held"] == "AB"  # not due yet

    clock[0] = start + timedelta(minutes=14, seconds=30)  # a minute before the warning: the AB goes
    assert await watch_b.step()
    assert (await eventually(lambda: mls_of(pair, held)))["code"] == "AB"
    assert await pair.b.pool.fetchval("SELECT count(*) FROM outbound_messages WHERE kind = 'mls'") == 2

    # A document that waits past 20 minutes without its MLS at A (MLS-2) is warned of once.
    late = await send_sbd(pair, invoice(4))
    await eventually(lambda: inbound(pair, late))
    delivered = await eventually(  # A records the delivery once the receipt is back: after B stored it
        lambda: pair.a.pool.fetchval("SELECT delivered_at FROM outbound_messages WHERE id = $1", late)
    )
    clock[0] = delivered + timedelta(minutes=20, seconds=1)
    await watch_a.step()
    await watch_a.step()
    warned = await operator_events(pair.a, "mls.deadline_near")
    assert [(w["level"], w["document"], w["partner"]) for w in warned] == [("MLS-2", f"s{late}", "POP000002")]

    # The figures, also through the API and /metrics.
    status, body = await pair.operator_b.call("GET", "/v1/operator/mls", params={"month": f"{start:%Y-%m}"})
    assert status == 200, body
    mls1 = next(level for level in body["data"]["levels"] if level["level"] == "MLS-1")
    assert mls1["limit_minutes"] == 20 and mls1["partners"][0]["partner"] == "POP000001"
    assert mls1["with_mls"] == 2 and mls1["within_limit"] == 2 and mls1["share_within_limit"] == 1.0
    assert mls1["p99_seconds"] < 60
    print(f"MLS-1 at B: share within 20 min {mls1['share_within_limit']}, p50 {mls1['p50_seconds']} s, "
          f"p99 {mls1['p99_seconds']} s, waiting {mls1['waiting']}")  # fmt: skip
    a_total, a_partners = await duties_queries.mls_figures(
        pair.a.pool, MLS_2, start - timedelta(hours=1), start + timedelta(hours=1), MLS_STATES, clock[0]
    )
    assert (a_total.count, a_total.with_mls, a_total.waiting, a_total.share_within_limit) == (3, 2, 1, 1.0)
    a_total, a_partners = await duties_queries.mls_figures(  # past 25 minutes it counts as late
        pair.a.pool, MLS_2, start - timedelta(hours=1), start + timedelta(hours=1), MLS_STATES,
        delivered + timedelta(minutes=25, seconds=1),
    )  # fmt: skip
    assert (a_total.count, a_total.with_mls, a_total.overdue) == (3, 2, 1)
    assert a_total.share_within_limit == pytest.approx(2 / 3) and not a_total.meets(MLS_2)
    assert [p.partner for p in a_partners] == ["POP000002"]
    print(f"MLS-2 at A: share within 25 min {a_total.share_within_limit:.3f}, p99 {a_total.p99_seconds:.3f} s")
    status, text = await pair.operator_b.call("GET", "/metrics")
    assert b'peppol_mls_within_limit_ratio{level="MLS-1",partner="POP000001"} 1' in text

    # A slow MLS: received 30 minutes before it was sent counts against MLS-1.
    first = (await inbound(pair, acked))["id"]
    await pair.b.pool.execute(
        "UPDATE inbound_messages SET received_at = received_at - interval '30 minutes' WHERE id = $1", first
    )
    total, _ = await duties_queries.mls_figures(
        pair.b.pool, MLS_1, start - timedelta(hours=2), start + timedelta(hours=1), MLS_STATES
    )
    assert total.within_limit == 1 and total.with_mls == 2 and total.p99_seconds is not None
    assert total.p99_seconds > 20 * 60


async def test_an_mls_to_that_fails_falls_back_to_the_senders_spid(pair: Pair) -> None:
    unknown = await send_sbd(pair, invoice(11, mls_to="0242:000099"))  # not registered anywhere
    refusing = await send_sbd(pair, invoice(12, mls_to=NORWAY))  # registered, but takes no MLS
    for job in (unknown, refusing):
        assert (await eventually(lambda job=job: mls_of(pair, job)))["code"] == "AB"
    rows = await pair.b.pool.fetch("SELECT * FROM outbound_messages WHERE kind = 'mls' ORDER BY id")
    assert [r["receiver"] for r in rows] == ["iso6523-actorid-upis::0242:000001"] * 2
    assert [r["fallback_receiver"] for r in rows] == [None, None]
    audit = await pair.b.pool.fetch(
        "SELECT reason FROM outbound_audit WHERE outbound_id = ANY($1::bigint[]) AND reason LIKE '%now to%'",
        [r["id"] for r in rows],
    )
    reasons = sorted(a["reason"] for a in audit)
    assert len(reasons) == 2 and "0242:000099" in " ".join(reasons) and FINLAND not in " ".join(reasons)
    assert {r["error_code"] for r in rows} <= {None}


async def test_an_mls_whose_receiver_cannot_be_resolved_is_retried_not_failed(pair: Pair) -> None:
    processor = pair.b.services.processor
    async with pair.b.pool.acquire() as conn, conn.transaction():
        await processor._queue_mls(conn, MlsSubject(0, "POP000077", None, str(uuid.uuid4())), "AB", [])
    job = await pair.b.pool.fetchval("SELECT id FROM outbound_messages WHERE kind = 'mls'")

    async def tried() -> Any:
        row = await pair.b.pool.fetchrow("SELECT state, error_code FROM outbound_messages WHERE id = $1", job)
        return row if row["error_code"] is not None else None

    row = await eventually(tried)
    assert (row["state"], row["error_code"]) == ("retrying", "receiver_not_registered")


async def test_a_stored_document_that_no_longer_reads_gets_a_negative_mls_with_fd(pair: Pair) -> None:
    """FD (failure of delivery) is for a permanent failure only: a document received and stored
    whose stored copy can no longer be read is rejected and its sender told so with FD, even when
    the envelope asked for failures only."""
    job = await send_sbd(pair, invoice(21, mls_type="FAILURE_ONLY"))

    async def processed() -> Any:
        row = await inbound(pair, job)
        return row if row is not None and row["processing"] == "done" else None

    row = await eventually(processed)
    assert await mls_of(pair, job) is None  # accepted, and failures only: no MLS
    # the stored copy is damaged on disk, then the message is processed again (as after a
    # restore from a backup that lost the document)
    async with pair.b.pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE documents SET content = $2 WHERE sha256 = $1", row["document_sha256"], b"\x00lost")
        await conn.execute("UPDATE inbound_messages SET processing = 'pending' WHERE id = $1", row["id"])
    pair.b.services.processor.wake()
    mls = await eventually(lambda: mls_of(pair, job))
    assert mls["code"] == "RE", mls
    sent = await pair.b.pool.fetch("SELECT o.document_sha256 FROM outbound_messages o WHERE o.kind = 'mls'")
    assert len(sent) == 1
    content = await pair.b.pool.fetchval("SELECT content FROM documents WHERE sha256 = $1", sent[0]["document_sha256"])
    reasons = [e.text for e in etree.fromstring(content).iter("{*}StatusReasonCode")]
    assert reasons == ["FD"], reasons
    status = await pair.b.pool.fetchval("SELECT status FROM inbound_messages WHERE id = $1", row["id"])
    assert status == "rejected"


async def test_a_received_mls_that_breaks_a_rule_is_kept_flagged_and_not_taken_as_the_answer(pair: Pair) -> None:
    job = await send_sbd(pair, invoice(31, mls_type="FAILURE_ONLY"))
    await eventually(lambda: inbound(pair, job))
    instance = await pair.a.pool.fetchval("SELECT instance_identifier FROM outbound_messages WHERE id = $1", job)
    # B's provider answers with an MLS whose response code is not in the code list (SCH-MLS-19)
    mls = build_mls(sender_spid="0242:000002", receiver_spid="0242:000001", referenced_instance=instance, code="AP")
    broken = mls.replace(b"<cbc:ResponseCode>AP<", b"<cbc:ResponseCode>OK<")
    assert broken != mls
    derived = derive_submission(
        broken, sender="0242:000002", receiver="0242:000001", document_type=str(smp.MLS.document_type),
        process=str(smp.MLS.process), country_c1="FI",
    )  # fmt: skip
    await submit_document(pair.b.pool, derived, retry_window=60)

    async def flagged() -> Any:
        return await pair.a.pool.fetchval("SELECT mls_flagged FROM outbound_messages WHERE id = $1", job)

    flag = json.loads(await eventually(flagged))
    assert flag["code"] == "OK" and flag["rules"] == ["SCH-MLS-19"]
    kept = await pair.a.pool.fetchrow("SELECT id, status, validation FROM inbound_messages WHERE kind = 'mls'")
    assert kept["status"] == "rejected" and "SCH-MLS-19" in kept["validation"] and flag["mls_message_id"] == kept["id"]
    doc = await document(pair.norway, f"s{job}")
    assert doc["mls"] is None and doc["status"] != "REJECTED" and doc["mls_flagged"]["rules"] == ["SCH-MLS-19"]
    events = await operator_events(pair.a, "mls.invalid")
    assert [(e["code"], e["rules"], e["outbound_id"]) for e in events] == [("OK", ["SCH-MLS-19"], job)]
