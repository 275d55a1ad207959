"""Participants reach the Peppol SML: a gateway in the ``test`` zone registers its companies'
participants through the SML management interface, here a BDMSL-shaped SOAP server of our own
on loopback over mutual TLS (tests/support/bdmsl.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

import smp
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki, issue, name
from gateway.directory import queries as directory_queries
from gateway.security.credentials import create_operator
from tests.support.api import Caller, token
from tests.support.bdmsl import FakeBdmsl, SmlTls, running_bdmsl
from tests.support.gateways import InProcessGateway, in_process_gateway

SMP_ID = "GW-SMP-1"
NORWAY = "0192:991825827"


@pytest.fixture
async def sml(dev_pki: DevPki, tmp_path: Path) -> AsyncIterator[tuple[FakeBdmsl, SmlTls]]:
    async with running_bdmsl(dev_pki, tmp_path / "sml") as running:
        yield running


def peppol_test_zone(state: FakeBdmsl, tls: SmlTls, smp_id: str = SMP_ID) -> dict[str, str]:
    """A gateway of the Peppol test network whose SML is our server (no local SML)."""
    return {
        "PEPPOL_SML_ZONE": "test",
        "PEPPOL_SML_UPDATE_SERVER": "",
        "PEPPOL_SML_UPDATE_KEY": "",
        "PEPPOL_SML_MANAGEMENT_URL": state.url,
        "PEPPOL_SML_MANAGEMENT_TRUST": str(tls.ca_file),
        "PEPPOL_SMP_ID": smp_id,
        "PEPPOL_SMP_URL": "https://smp.gateway.test/smp",
    }


@dataclass
class Company:
    id: str
    caller: Caller
    operator: Caller


async def verified_company(gw: InProcessGateway, session: aiohttp.ClientSession) -> Company:
    operator_id, key = await create_operator(gw.pool, "Operator")
    operator = await token(session, gw.url, str(operator_id), key)
    status, body = await operator.call(
        "POST", "/v1/companies", json={"name": "Nordic Supplies AS", "country": "NO", "business_id": "991825827"}
    )
    assert status == 201, body
    company_id, company_key = body["data"]["id"], body["data"]["api_key"]
    status, _ = await operator.call("POST", f"/v1/companies/{company_id}/verify")
    assert status == 200
    return Company(company_id, await token(session, gw.url, company_id, company_key), operator)


async def test_company_registered_through_the_api_is_created_under_our_smp_id_and_deleting_removes_it(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki, db_dsn: str, knot: KnotDns
) -> None:
    state, tls = sml
    state.seed_smp(SMP_ID, dev_pki.smp.cert)
    async with (
        in_process_gateway(dev_pki, "ap1", db_dsn, knot, **peppol_test_zone(state, tls)) as gw,
        aiohttp.ClientSession() as session,
    ):
        assert isinstance(gw.runtime.registrar, smp.SmlManagementClient)
        company = await verified_company(gw, session)
        status, body = await company.caller.call(
            "POST", "/v1/company/profiles", json={"profiles": ["INVOICE_AND_CREDIT_NOTE"], "participant_id": NORWAY}
        )
        assert status == 201, body
        assert [p["status"] for p in body["data"]] == ["active"]
        assert f"iso6523-actorid-upis::{NORWAY}" in state.participants_of(SMP_ID)
        create = [r for r in state.requests if r.element == "CreateParticipantIdentifier"][-1]
        assert create.body.findtext("{http://busdox.org/serviceMetadata/locator/1.0/}ServiceMetadataPublisherID") == (
            SMP_ID
        )

        status, _ = await company.caller.call("DELETE", f"/v1/company/profiles/{body['data'][0]['id']}")
        assert status == 200
        assert f"iso6523-actorid-upis::{NORWAY}" not in state.participants_of(SMP_ID)
        assert state.requests[-1].element == "DeleteParticipantIdentifier"


async def test_a_refusing_sml_leaves_the_profile_pending_with_its_fault_until_a_retry_succeeds(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki, db_dsn: str, knot: KnotDns
) -> None:
    state, tls = sml  # our SMP id is not registered in the SML yet: it refuses with ERR-100
    async with (
        in_process_gateway(dev_pki, "ap1", db_dsn, knot, **peppol_test_zone(state, tls)) as gw,
        aiohttp.ClientSession() as session,
    ):
        company = await verified_company(gw, session)
        status, body = await company.caller.call(
            "POST", "/v1/company/profiles", json={"profiles": ["ORDER"], "participant_id": NORWAY}
        )
        assert status == 201, body
        profile = body["data"][0]
        assert profile["status"] == "pending"
        assert f"[ERR-100] The SMP '{SMP_ID}' doesn't exist." in profile["status_reason"]
        assert profile["sml_attempts"] == 1 and profile["sml_retry_at"] is not None

        status, listing = await company.caller.call("GET", "/v1/company/profiles")
        assert status == 200
        assert [(p["status"], "ERR-100" in p["status_reason"]) for p in listing["data"]] == [("pending", True)]
        events = await gw.pool.fetch("SELECT payload FROM events WHERE company_id IS NULL AND kind = $1",
                                     "sml.registration_failed")  # fmt: skip
        assert len(events) == 1 and "ERR-100" in events[0]["payload"]

        retry = gw.services.sml
        assert retry is not None and "directory.sml" in gw.services.lifecycle.names
        # not due yet: nothing is sent
        sent = len(state.requests)
        assert not await retry.run_once(datetime.now(UTC))
        assert len(state.requests) == sent
        # still refused when due: still pending, later again, no second operator event
        assert await retry.run_once(datetime.now(UTC) + timedelta(hours=1))
        again = (await directory_queries.company_profiles(gw.pool, uuid.UUID(company.id)))[0]
        assert (again.status, again.sml_attempts) == ("pending", 2)
        assert again.sml_retry_at is not None and again.sml_retry_at > datetime.now(UTC) + timedelta(hours=1)
        # the operator registers our SMP; the next retry succeeds
        state.seed_smp(SMP_ID, dev_pki.smp.cert)
        assert await retry.run_once(datetime.now(UTC) + timedelta(days=1))
        status, listing = await company.caller.call("GET", "/v1/company/profiles")
        assert [(p["status"], p["status_reason"], p["sml_retry_at"]) for p in listing["data"]] == [
            ("active", None, None)
        ]
        assert f"iso6523-actorid-upis::{NORWAY}" in state.participants_of(SMP_ID)


async def test_operator_api_migrates_a_participant_out_and_in(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki, db_dsn: str, knot: KnotDns
) -> None:
    state, tls = sml
    state.seed_smp(SMP_ID, dev_pki.smp.cert)
    async with (
        in_process_gateway(dev_pki, "ap1", db_dsn, knot, **peppol_test_zone(state, tls)) as gw,
        aiohttp.ClientSession() as session,
    ):
        company = await verified_company(gw, session)
        await company.caller.call(
            "POST", "/v1/company/profiles", json={"profiles": ["ORDER"], "participant_id": NORWAY}
        )
        status, body = await company.operator.call(
            "POST", "/v1/operator/migrations/out", json={"participant_id": NORWAY}
        )
        assert status == 201, body
        key = body["data"]["migration_key"]
        smp.check_migration_key(key)
        assert state.migrations[f"iso6523-actorid-upis::{NORWAY}"] == (SMP_ID, key)

        # another participant, held by another SMP that prepared its move to us
        sweden = "0007:5567321707"
        state.seed_smp("OTHER-SMP", dev_pki.smp.cert)
        state.participants[f"iso6523-actorid-upis::{sweden}"] = "OTHER-SMP"
        state.migrations[f"iso6523-actorid-upis::{sweden}"] = ("OTHER-SMP", "Ab12#$cdEF34")
        status, body = await company.caller.call(
            "POST", "/v1/company/profiles", json={"profiles": ["INVOICE_AND_CREDIT_NOTE"], "participant_id": sweden}
        )
        assert body["data"][0]["status"] == "pending" and "already exists" in body["data"][0]["status_reason"]
        status, body = await company.operator.call(
            "POST", "/v1/operator/migrations/in", json={"participant_id": sweden, "migration_key": "wrong"}
        )
        assert (status, body["error"]["code"]) == (502, "sml_refused")
        assert "8 to 24 characters" in body["error"]["details"]["fault"]
        status, body = await company.operator.call(
            "POST", "/v1/operator/migrations/in", json={"participant_id": sweden, "migration_key": "Ab12#$cdEF34"}
        )
        assert status == 200, body
        assert [p["status"] for p in body["data"]["profiles"]] == ["active"]
        assert state.participants[f"iso6523-actorid-upis::{sweden}"] == SMP_ID
        # a company cannot migrate; a participant not served here is not found
        status, _ = await company.caller.call("POST", "/v1/operator/migrations/out", json={"participant_id": NORWAY})
        assert status == 403
        status, _ = await company.operator.call(
            "POST", "/v1/operator/migrations/out", json={"participant_id": "0192:974760673"}
        )
        assert status == 404


async def test_the_sml_refuses_client_certificates_of_another_ca(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki, tmp_path: Path
) -> None:
    state, tls = sml
    state.seed_smp(SMP_ID, dev_pki.smp.cert)
    ours = smp.SmlManagementClient(
        state.url, SMP_ID,
        ssl_context=smp.client_tls_context(dev_pki.directory / "smp.cert.pem", dev_pki.directory / "smp.key.pem",
                                           tls.ca_file),
    )  # fmt: skip
    await ours.register(smp.ParticipantId.parse(NORWAY))  # the positive control
    assert state.participants_of(SMP_ID) == [f"iso6523-actorid-upis::{NORWAY}"]

    from cryptography.hazmat.primitives import serialization

    other_root = issue(name("Another Root CA"), None, ca=True, path_length=1)
    stranger = issue(name("PNO000999", ou="PEPPOL TEST SMP"), other_root, ca=False)
    (tmp_path / "stranger.cert.pem").write_bytes(stranger.cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "stranger.key.pem").write_bytes(
        stranger.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    seen = len(state.requests)
    for cert, key in (
        (tmp_path / "stranger.cert.pem", tmp_path / "stranger.key.pem"),
        (dev_pki.directory / "ap1.cert.pem", dev_pki.directory / "ap1.key.pem"),  # a Peppol AP, no SMP
    ):
        client = smp.SmlManagementClient(
            state.url, SMP_ID, ssl_context=smp.client_tls_context(cert, key, tls.ca_file), timeout=5
        )
        with pytest.raises(smp.RegistrationError, match="unreachable") as refused:
            await client.register(smp.ParticipantId.parse("0192:974760673"))
        assert refused.value.retryable
    assert len(state.requests) == seen  # nothing got through TLS
    assert state.participants_of(SMP_ID) == [f"iso6523-actorid-upis::{NORWAY}"]
