"""`peppol-gateway lookup`: the whole discovery path from the command line, against a real DNS
server and our SMP; failures are one line naming what failed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from smp import LocalSml, ParticipantId, profile_services, smp_application
from tests.support.services import SML_ZONE
from tests.support.smp import MemorySource, metadata

INVOICE = profile_services("INVOICE_AND_CREDIT_NOTE")[0]
ORDER = profile_services("ORDER")[0]


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "lookup", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def published(knot: KnotDns, dev_pki: DevPki) -> AsyncIterator[ParticipantId]:
    source = MemorySource()
    participant = ParticipantId.parse("0007:5567321707")
    source.services[participant] = {INVOICE.document_type: metadata(dev_pki, participant)}
    server = TestServer(smp_application(source, dev_pki.smp.key, dev_pki.smp.cert))
    await server.start_server()
    await LocalSml(
        SML_ZONE,
        knot.address,
        str(server.make_url("")),
        key_name=knot.key_name,
        key_secret=knot.secret,
    ).register(participant)
    yield participant
    await server.close()


def _trust(dev_pki: DevPki) -> list[str]:
    return [
        "--smp-trust",
        str(dev_pki.directory / "smp-ca.cert.pem"),
        "--ap-trust",
        str(dev_pki.directory / "ap-ca.cert.pem"),
    ]


async def test_lookup_prints_the_endpoint_and_every_check(knot, dev_pki, published) -> None:  # type: ignore[no-untyped-def]
    code, out, err = await cli(published.value, "--sml", SML_ZONE, "--dns", knot.address, *_trust(dev_pki), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["endpoint"]["url"] == "https://ap.example/as4"
    assert report["endpoint"]["seat_id"] == "POP000001"
    assert report["sml_name"].endswith(".iso6523-actorid-upis." + SML_ZONE)
    assert all(step["ok"] for step in report["steps"])
    assert str(INVOICE.document_type) in report["supported_document_types"]


async def test_lookup_text_output_is_for_people(knot, dev_pki, published) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = await cli(published.value, "--sml", SML_ZONE, "--dns", knot.address, *_trust(dev_pki))
    assert code == 0
    assert "endpoint        https://ap.example/as4" in out and "[ok]" in out


async def test_unsupported_document_type_fails_in_one_line(knot, dev_pki, published) -> None:  # type: ignore[no-untyped-def]
    code, _, err = await cli(
        published.value,
        "--document-type",
        str(ORDER.document_type),
        "--sml",
        SML_ZONE,
        "--dns",
        knot.address,
        *_trust(dev_pki),
    )
    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and "document type not supported" in err


async def test_unregistered_participant_fails_in_one_line(knot, dev_pki) -> None:  # type: ignore[no-untyped-def]
    code, _, err = await cli("0192:974760673", "--sml", SML_ZONE, "--dns", knot.address, *_trust(dev_pki))
    assert code == 1 and "not registered in the SML" in err and "Traceback" not in err


async def test_bad_check_digit_fails_before_any_query(dev_pki) -> None:  # type: ignore[no-untyped-def]
    code, _, err = await cli("0192:991825828", "--dns", "127.0.0.1:9", *_trust(dev_pki))
    assert code == 1 and "check digit" in err


async def test_untrusted_smp_certificate_is_named(knot, dev_pki, published) -> None:  # type: ignore[no-untyped-def]
    code, _, err = await cli(
        published.value, "--sml", SML_ZONE, "--dns", knot.address,
        "--smp-trust", str(dev_pki.directory / "ap-ca.cert.pem"), "--ap-trust", str(dev_pki.directory / "ap-ca.cert.pem"),
    )  # fmt: skip
    assert code == 1 and "untrusted SMP certificate" in err


async def test_lookup_in_the_peppol_test_network_starts_on_a_fresh_install(tmp_path: Path) -> None:
    # No certs-dev/, no configuration: the shipped Peppol test CAs are the trust. Without
    # network access the lookup may fail on DNS or the SMP, but never on trust files.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "lookup", "0192:991825827", "--sml", "test", "--json",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode() + err.decode()
    assert "trust" not in text.lower() or "untrusted" in text.lower(), text
    assert "cannot read" not in text and "certs-dev" not in text and "Traceback" not in text, text
    report = json.loads(out.decode().strip().splitlines()[0] if proc.returncode else out.decode())
    assert report["participant"] == "0192:991825827"
    if proc.returncode:
        assert report["error"].split(":")[0] in ("DNS failure", "not registered in the SML", "SMP unreachable"), text
