"""`peppol-gateway sml`: our SMP's record, its certificate change and participant migration,
sent as processes to a BDMSL-shaped SML over mutual TLS (tests/support/bdmsl.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.dev.pki import DevPki, issue, name
from smp import check_migration_key
from tests.support.bdmsl import BDMSL, LRS, FakeBdmsl, SmlTls, running_bdmsl
from tests.support.gateways import new_database

SMP_ID = "GW-SMP-1"
NORWAY = "iso6523-actorid-upis::0192:991825827"


@pytest.fixture
async def sml(dev_pki: DevPki, tmp_path: Path) -> AsyncIterator[tuple[FakeBdmsl, SmlTls]]:
    async with running_bdmsl(dev_pki, tmp_path / "sml") as running:
        yield running


def sml_env(pki: DevPki, state: FakeBdmsl, tls: SmlTls, **extra: str) -> dict[str, str]:
    d = pki.directory
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PEPPOL_SML_ZONE": "test",
        "PEPPOL_SML_MANAGEMENT_URL": state.url,
        "PEPPOL_SML_MANAGEMENT_TRUST": str(tls.ca_file),
        "PEPPOL_SMP_ID": SMP_ID,
        "PEPPOL_SMP_URL": "https://smp.gateway.test/smp/",
        "PEPPOL_SMP_KEY": str(d / "smp.key.pem"),
        "PEPPOL_SMP_CERT": str(d / "smp.cert.pem"),
        "PEPPOL_SMP_TRUST": str(d / "smp-ca.cert.pem"),
        "PEPPOL_AP_KEY": str(d / "ap1.key.pem"),
        "PEPPOL_AP_CERT": str(d / "ap1.cert.pem"),
        "PEPPOL_AP_TRUST": str(d / "ap-ca.cert.pem"),
        "PEPPOL_LOG_LEVEL": "warning",
        **extra,
    }


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "sml", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_register_creates_then_updates_our_smp_record_and_status_shows_it(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki
) -> None:
    state, tls = sml
    env = sml_env(dev_pki, state, tls)
    code, out, err = await cli(env, "status")
    assert code == 0, err
    assert "is not registered" in out

    code, out, err = await cli(env, "register", "--physical-address", "192.0.2.10", "--json")
    assert code == 0, err
    assert json.loads(out)["result"] == "created"
    create = [r for r in state.requests if r.element == "CreateServiceMetadataPublisherService"]
    assert create and create[0].action.endswith("ManageServiceMetadataService/1.0/:createIn")
    assert state.smps[SMP_ID].logical == "https://smp.gateway.test/smp"
    assert state.smps[SMP_ID].physical == "192.0.2.10"

    code, out, _ = await cli({**env, "PEPPOL_SMP_URL": "https://smp2.gateway.test"}, "register",
                             "--physical-address", "192.0.2.11")  # fmt: skip
    assert code == 0 and "updated" in out
    assert state.smps[SMP_ID].logical == "https://smp2.gateway.test"
    assert [r.element for r in state.requests[-2:]] == [
        "ReadServiceMetadataPublisherService",
        "UpdateServiceMetadataPublisherService",
    ]

    for n in ("0192:991825827", "0007:5567321707", "0088:5798000000001"):
        state.participants[f"iso6523-actorid-upis::{n}"] = SMP_ID
    code, out, err = await cli(env, "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["registered"] and status["logical_address"] == "https://smp2.gateway.test"
    assert len(status["participants"]) == 3  # over two pages
    assert [r.element for r in state.requests].count("PageRequest") >= 2

    # http is not a Peppol SMP address: refused before asking the SML
    code, _, err = await cli({**env, "PEPPOL_SMP_URL": "http://smp.gateway.test"}, "register",
                             "--physical-address", "192.0.2.10")  # fmt: skip
    assert code == 1 and "https" in err


async def test_change_certificate_announces_the_new_certificate_and_its_date(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki, tmp_path: Path
) -> None:
    state, tls = sml
    state.seed_smp(SMP_ID, dev_pki.smp.cert)
    new = issue(name("PNO000900", "Development SMP", ou="PEPPOL TEST SMP"), dev_pki.smp_ca, ca=False)
    pem = tmp_path / "new-smp.cert.pem"
    pem.write_bytes(new.cert.public_bytes(serialization.Encoding.PEM))
    when = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    code, out, err = await cli(sml_env(dev_pki, state, tls), "change-certificate", str(pem), "--from", when)
    assert code == 0, err
    assert when in out
    seen = state.requests[-1]
    assert (seen.service, seen.action) == ("bdmslservice", "ec:services:wsdl:BDMSL:1.0:prepareChangeCertificateIn")
    assert seen.body.findtext(f"{{{BDMSL}}}migrationDate") == when
    [(_, sent_pem, sent_date)] = state.certificate_changes
    assert sent_pem.encode() == pem.read_bytes().strip() and sent_date == when

    # the SML's refusal comes back with its text, exit 2
    past = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    code, _, err = await cli(sml_env(dev_pki, state, tls), "change-certificate", str(pem), "--from", past)
    assert code == 1 and "[ERR-106] The migration date must not be in the past." in err


async def test_migrate_out_prints_a_valid_key_and_migrate_in_takes_a_participant_over(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki, pg_dsn: str, template_db: str
) -> None:
    state, tls = sml
    state.seed_smp(SMP_ID, dev_pki.smp.cert)
    state.participants[NORWAY] = SMP_ID
    env = sml_env(dev_pki, state, tls)
    code, out, err = await cli(env, "migrate-out", "0192:991825827", "--json")
    assert code == 0, err
    key = json.loads(out)["migration_key"]
    assert check_migration_key(key) == key
    prepare = state.requests[-1]
    assert prepare.element == "PrepareMigrationRecord"
    assert prepare.action.endswith("ManageBusinessIdentifierService/1.0/         :prepareMigrateIn")
    assert prepare.body.findtext(f"{{{LRS}}}MigrationKey") == key
    assert state.migrations[NORWAY] == (SMP_ID, key)

    # taking a participant over: it must be registered here first
    sweden = "iso6523-actorid-upis::0007:5567321707"
    state.seed_smp("OTHER-SMP", dev_pki.smp.cert)
    state.participants[sweden] = "OTHER-SMP"
    state.migrations[sweden] = ("OTHER-SMP", "Xy34!~pqRS56")
    db = {"DATABASE_URL": await new_database(pg_dsn, template_db)}
    code, _, err = await cli({**env, **db}, "migrate-in", "0007:5567321707", "--key", "Xy34!~pqRS56")
    assert code == 1 and "add its company" in err
    assert state.participants[sweden] == "OTHER-SMP"

    add = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "company", "add", "--name", "Svenska AB", "--country", "SE",
        "--business-id", "5567321707", "--profiles", "ORDER", env={**env, **db},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out_b, err_b = await asyncio.wait_for(add.communicate(), 60)
    assert add.returncode == 0, err_b.decode()
    added = json.loads(out_b)
    # the CLI registers with the SML too, and says it is pending: the SML holds it for another SMP
    assert added["registered_in_sml"] is False
    assert [p["status"] for p in added["profiles"]] == ["pending"]
    assert "already exists" in added["profiles"][0]["reason"] and "pending" in err_b.decode()

    code, out, err = await cli({**env, **db}, "migrate-in", "0007:5567321707", "--key", "Xy34!~pqRS56", "--json")
    assert code == 0, err
    assert [p["status"] for p in json.loads(out)["profiles"]] == ["active"]
    assert state.requests[-1].element == "CompleteMigrationRecord"
    assert state.participants[sweden] == SMP_ID


async def test_without_an_smp_id_the_commands_say_what_is_missing(
    sml: tuple[FakeBdmsl, SmlTls], dev_pki: DevPki
) -> None:
    state, tls = sml
    env = sml_env(dev_pki, state, tls)
    del env["PEPPOL_SMP_ID"]
    code, _, err = await cli(env, "status")
    assert code == 1 and "smp.id" in err
    assert not state.requests
