"""Receiver discovery over the API and the Peppol Directory, against the real app, PostgreSQL, the
test Knot zone as the SML and our SMP: registered / not registered / wrong check digit / filter
yes and no / an untrusted SMP; business cards served by our SMP (valid against the Directory's
XSD), the stand-in indexer told of a change, search through the stand-in."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from lxml import etree

import smp
from gateway.dev.directory import StandInDirectory, standin_application
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security.credentials import create_api_key, create_operator
from tests.support.api import Caller, token
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database, register_company
from tests.support.paths import ROOT
from tests.support.services import SML_ZONE
from tests.support.smp import MemorySource, metadata

# participants no other test registers (the SML zone is shared by the whole run)
SWEDEN = "0007:5560360793"
NOBODY = "0192:923609016"
ROGUE = "0088:5790000435975"
CARDS = ROOT.parent / "shared" / "corpora" / "business-cards"
XSD = CARDS / "peppol-directory-business-card-20180621.xsd"


@dataclass
class World:
    gw: InProcessGateway
    session: aiohttp.ClientSession
    company: Caller
    operator: Caller
    standin: TestServer
    rogue_smp: str


@pytest.fixture(scope="module")
async def world(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> AsyncIterator[World]:
    standin = TestServer(standin_application(smp.SmlLookup(SML_ZONE, knot.address)), host="127.0.0.1")
    await standin.start_server()
    # An SMP whose answers are signed by a certificate no SMP CA issued (an AP certificate).
    rogue_source = MemorySource()
    rogue_pid = smp.ParticipantId.parse(ROGUE)
    rogue_source.services[rogue_pid] = {
        smp.profile_services("ORDER")[0].document_type: metadata(dev_pki, rogue_pid, smp.profile_services("ORDER")[0])
    }
    ap = dev_pki.access_points["ap2"]
    rogue = TestServer(smp.smp_application(rogue_source, ap.key, ap.cert), host="127.0.0.1")
    await rogue.start_server()
    rogue_url = str(rogue.make_url("")).rstrip("/")
    await smp.LocalSml(SML_ZONE, knot.address, rogue_url, key_name=knot.key_name, key_secret=knot.secret).register(
        rogue_pid
    )
    base = str(standin.make_url("")).rstrip("/")
    async with (
        in_process_gateway(
            dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False,
            PEPPOL_DIRECTORY_INDEXER_URL=f"{base}/indexer/1.0/", PEPPOL_DIRECTORY_SEARCH_URL=f"{base}/search/1.0/json",
            PEPPOL_DIRECTORY_RETRY_INTERVAL="1",
        ) as gw,
        aiohttp.ClientSession() as session,
    ):  # fmt: skip
        company_id = await register_company(gw, "Svenska Order AB", "SE", SWEDEN, "ORDER", "INVOICE_AND_CREDIT_NOTE")
        operator_id, operator_key = await create_operator(gw.pool, "Directory operator")
        async with gw.pool.acquire() as conn:
            await conn.execute("UPDATE companies SET operator_id = $1 WHERE id = $2", operator_id, company_id)
        _, key = await create_api_key(gw.pool, company_id=company_id)
        company = await token(session, gw.url, str(company_id), key)
        operator = await token(session, gw.url, str(operator_id), operator_key)
        yield World(gw, session, company, operator, standin, rogue_url)
    await rogue.close()
    await standin.close()


async def test_a_registered_participant_shows_every_document_type_with_its_endpoint(world: World) -> None:
    status, body = await world.company.call("GET", f"/v1/participants/{SWEDEN}")
    assert status == 200, body
    data = body["data"]
    assert data["registered"] is True and data["receives"] is True
    assert data["participant"] == f"iso6523-actorid-upis::{SWEDEN}"
    assert data["smp_url"] == f"{world.gw.url}/smp"
    assert data["checks"] == {"smp_signature": True, "ap_certificate": True}
    names = {s["name"] for s in data["services"]}
    assert names == {"BIS3_ORDER", "BIS3_INVOICE", "BIS3_CREDIT_NOTE"}
    order = next(s for s in data["services"] if s["name"] == "BIS3_ORDER")
    assert len(order["processes"]) == 3 and order["receivable"] is True
    endpoint = order["processes"][0]["endpoints"][0]
    assert endpoint["url"] == world.gw.as4_url
    assert endpoint["transport_profile"] == "peppol-transport-as4-v2_0"
    assert endpoint["seat_id"] == "POP000001" and endpoint["certificate_trusted"] is True
    assert endpoint["certificate_subject"].startswith("CN=POP000001")
    assert endpoint["certificate_valid_until"] > endpoint["certificate_valid_from"]
    assert "filter" not in data


async def test_the_filter_gives_a_definite_answer(world: World) -> None:
    status, body = await world.company.call("GET", f"/v1/participants/{SWEDEN}?profile=ORDER")
    assert status == 200
    assert body["data"]["receives"] is True
    assert [s["name"] for s in body["data"]["services"]] == ["BIS3_ORDER"]
    assert body["data"]["filter"]["document_types"][0]["receives"] is True

    status, body = await world.company.call("GET", f"/v1/participants/{SWEDEN}?profile=DESPATCH_ADVICE")
    assert status == 200
    assert body["data"]["registered"] is True and body["data"]["receives"] is False
    assert body["data"]["filter"]["document_types"][0] == {
        "document_type": str(smp.profile_services("DESPATCH_ADVICE")[0].document_type),
        "receives": False,
        "registration": None,
    }
    credit_note = smp.profile_services("INVOICE_AND_CREDIT_NOTE")[1].document_type
    status, body = await world.company.call(
        "GET", f"/v1/participants/{SWEDEN}", params={"document_type": str(credit_note)}
    )
    assert status == 200 and body["data"]["receives"] is True

    status, body = await world.company.call("GET", f"/v1/participants/{SWEDEN}?profile=NO_SUCH_PROFILE")
    assert status == 400 and body["error"]["details"]["field"] == "profile"


async def test_a_participant_not_in_the_sml_is_answered_not_registered(world: World) -> None:
    status, body = await world.company.call("GET", f"/v1/participants/{NOBODY}?profile=INVOICE_AND_CREDIT_NOTE")
    assert status == 200
    data = body["data"]
    assert (data["registered"], data["receives"], data["smp_url"], data["services"]) == (False, False, None, [])


async def test_a_wrong_check_digit_is_a_400_naming_the_rule(world: World) -> None:
    status, body = await world.company.call("GET", "/v1/participants/0007:5560360794")
    assert status == 400
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["field"] == "participant"
    assert "Luhn" in body["error"]["details"]["rule"]


async def test_an_smp_we_do_not_trust_is_reported_and_nothing_is_receivable(world: World) -> None:
    status, body = await world.company.call("GET", f"/v1/participants/{ROGUE}?profile=ORDER")
    assert status == 200
    data = body["data"]
    assert data["registered"] is True and data["smp_url"] == world.rogue_smp
    assert data["receives"] is False
    assert data["checks"]["smp_signature"] is False
    assert data["services"][0]["error"]["code"] == "untrusted_smp_certificate"


async def test_discovery_needs_a_token(world: World) -> None:
    async with world.session.get(f"{world.gw.url}/v1/participants/{SWEDEN}") as response:
        assert response.status == 401


def _validate_against_xsd(xml: bytes) -> None:
    if not XSD.exists():
        pytest.skip(f"the Peppol Directory business card XSD is not here ({XSD}): ../shared is absent")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    document = etree.fromstring(xml)
    assert schema.validate(document), schema.error_log


CARD = {
    "publish": True,
    "names": [{"name": "Svenska Order AB", "language": "sv"}, {"name": "Swedish Orders Ltd", "language": "en"}],
    "country": "SE",
    "geographical_information": "Drottninggatan 1, Stockholm",
    "identifiers": [{"scheme": "VAT", "value": "SE556036079301"}],
    "websites": ["https://order.example.se"],
    "contacts": [{"type": "sales", "name": "Anna", "phone": "+46 8 123 45", "email": "sales@order.example.se"}],
    "additional_information": "Orders and invoices through Peppol only",
    "registration_date": "2026-01-15",
}


async def _wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def _standin_received(world: World) -> dict[str, Any]:
    async with world.session.get(str(world.standin.make_url("/received"))) as response:
        return await response.json()  # type: ignore[no-any-return]


async def test_a_published_card_is_served_valid_told_to_the_indexer_and_found(world: World) -> None:
    status, body = await world.company.call("PUT", "/v1/company/business_card", json=CARD)
    assert status == 200, body
    assert body["data"]["publish"] is True and body["data"]["served"] is True
    pid = smp.ParticipantId.parse(SWEDEN)
    async with world.session.get(f"{world.gw.url}/smp/businesscard/{pid.url_segment}") as response:
        assert response.status == 200
        xml = await response.read()
    _validate_against_xsd(xml)
    card = smp.parse_business_card(xml)
    assert card.participant == pid
    assert [n.name for n in card.entities[0].names] == ["Svenska Order AB", "Swedish Orders Ltd"]
    assert card.entities[0].registration_date is not None

    # the stand-in indexer is told, reads the card from our SMP (found through the SML)
    async def indexed() -> bool:
        got = await _standin_received(world)
        return any(r["method"] == "PUT" and r.get("indexed") and r["participant"] == pid.uri for r in got["received"])

    await _wait_for(indexed)

    async def sent() -> Any:
        _, answer = await world.company.call("GET", "/v1/company/business_card")
        notes = answer["data"]["directory"]["notifications"]
        return notes if notes and notes[0]["status"] == "sent" else None

    notes = await _wait_for(sent)
    assert notes[0]["action"] == "index" and notes[0]["attempts"] == 1

    # and the discovery answer carries the card
    status, body = await world.company.call("GET", f"/v1/participants/{SWEDEN}?profile=ORDER")
    assert body["data"]["business_card"]["entities"][0]["name"] == "Svenska Order AB"

    # search through the stand-in's index
    status, body = await world.company.call("GET", "/v1/directory/search", params={"q": "svenska", "country": "se"})
    assert status == 200, body
    assert body["data"]["total"] == 1
    match = body["data"]["matches"][0]
    assert match["participant"] == pid.uri
    assert match["entities"][0]["name"] == "Svenska Order AB"
    assert match["entities"][0]["identifiers"] == [{"scheme": "VAT", "value": "SE556036079301"}]
    assert any("Order-2" in d for d in match["document_types"])
    status, body = await world.company.call("GET", "/v1/directory/search", params={"q": "svenska", "country": "NO"})
    assert (status, body["data"]["total"]) == (200, 0)
    status, body = await world.company.call("GET", "/v1/directory/search")
    assert status == 400

    # the operator sees the notification and can send it again
    status, body = await world.operator.call("GET", "/v1/operator/directory_notifications?status=sent")
    assert status == 200 and body["data"][0]["participant"] == pid.uri
    status, body = await world.operator.call(
        "POST", f"/v1/operator/directory_notifications/{body['data'][0]['id']}/retry"
    )
    assert status == 200 and body["data"]["status"] == "pending"

    # publishing stops: the SMP no longer serves it and the indexer is told to forget it
    status, body = await world.company.call("PUT", "/v1/company/business_card", json={**CARD, "publish": False})
    assert status == 200 and body["data"]["served"] is False
    async with world.session.get(f"{world.gw.url}/smp/businesscard/{pid.url_segment}") as response:
        assert response.status == 404

    async def removed() -> bool:
        got = await _standin_received(world)
        return any(r["method"] == "DELETE" and r["participant"] == pid.uri for r in got["received"])

    await _wait_for(removed)


async def test_bad_business_cards_name_the_field(world: World) -> None:
    for change, field in (
        ({"country": "Sweden"}, "country"),
        ({"websites": ["ftp://x"]}, "websites"),
        ({"registration_date": "15.01.2026"}, "registration_date"),
        ({"colour": "blue"}, "colour"),
        ({"publish": "yes"}, "publish"),
    ):
        status, body = await world.company.call("PUT", "/v1/company/business_card", json={**CARD, **change})
        assert status == 400, change
        assert body["error"]["details"]["field"] == field


async def test_the_operator_variant_reaches_only_its_companies(world: World) -> None:
    status, body = await world.company.call("GET", "/v1/company/business_card")
    company_id = body["data"]["company_id"]
    status, body = await world.operator.call("GET", f"/v1/companies/{company_id}/business_card")
    assert status == 200 and body["data"]["participants"] == [f"iso6523-actorid-upis::{SWEDEN}"]
    status, body = await world.operator.call(
        "PUT", f"/v1/companies/{company_id}/business_card", json={"name": "Svenska Order AB (operator)"}
    )
    assert status == 200 and body["data"]["name"] == "Svenska Order AB (operator)"
    status, _ = await world.operator.call("GET", "/v1/companies/00000000-0000-0000-0000-000000000000/business_card")
    assert status == 404


def test_the_shared_example_cards_read_and_ours_are_schema_valid() -> None:
    if not CARDS.exists():
        pytest.skip(f"the Peppol Directory examples are not here ({CARDS}): ../shared is absent")
    read = 0
    for path in sorted(CARDS.glob("*.xml")):
        try:
            card = smp.parse_business_card(path.read_bytes())
        except smp.MetadataError as exc:
            # a card of an older format version, or an id whose check digit we refuse
            assert "v3" in str(exc) or "BusinessCard:" in str(exc), (path.name, exc)
            continue
        _validate_against_xsd(smp.build_business_card(card))
        assert smp.parse_business_card(smp.build_business_card(card)) == card
        read += 1
    assert read >= 3


def test_the_threaded_stand_in_serves_search_for_the_sandbox(knot: KnotDns) -> None:
    standin = StandInDirectory(SML_ZONE, knot.address)
    standin.start()
    try:
        with urllib.request.urlopen(f"{standin.search_url}?q=nothing", timeout=5) as response:
            assert response.status == 200
            assert b'"total-result-count": 0' in response.read()
    finally:
        standin.stop()
