"""Our own certificates over time: a renewal is picked up from the files while the gateway runs
(new messages are signed with it and our SMP publishes it), and expiry is announced early."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import aiohttp

import smp
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki, _cert_pem, _key_pem, issue, name
from gateway.security.certificates import CertificateWatcher, WatchedIdentity
from gateway.security.identity import load_identity
from tests.support.gateways import in_process_gateway, new_database, register_company

NORWAY = "0192:991825827"


def _write(directory: Path, pair: object) -> None:
    (directory / "ap.key.pem").write_bytes(_key_pem(pair.key))  # type: ignore[attr-defined]
    (directory / "ap.cert.pem").write_bytes(_cert_pem(pair.cert))  # type: ignore[attr-defined]


async def test_a_renewed_certificate_is_used_and_published_without_a_restart(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, tmp_path: Path
) -> None:
    shutil.copy(dev_pki.directory / "ap1.key.pem", tmp_path / "ap.key.pem")
    shutil.copy(dev_pki.directory / "ap1.cert.pem", tmp_path / "ap.cert.pem")
    async with in_process_gateway(
        dev_pki, "ap1", await new_database(pg_dsn, template_db), knot,
        PEPPOL_AP_KEY=str(tmp_path / "ap.key.pem"), PEPPOL_AP_CERT=str(tmp_path / "ap.cert.pem"),
        PEPPOL_AP_RELOAD_INTERVAL="0.2",
    ) as gw:  # fmt: skip
        await register_company(gw, "Nordic Supplies AS", "NO", NORWAY, "INVOICE_AND_CREDIT_NOTE")
        old_serial = gw.runtime.identity.cert.serial_number
        renewed = issue(name("POP000001", country="NO", ou="PEPPOL TEST AP"), dev_pki.ap_ca, ca=False)
        _write(tmp_path, renewed)
        deadline = asyncio.get_running_loop().time() + 10
        while gw.runtime.identity.cert.serial_number == old_serial:
            assert asyncio.get_running_loop().time() < deadline, "the renewal was not picked up"
            await asyncio.sleep(0.1)
        assert gw.runtime.identity.cert == renewed.cert and gw.runtime.identity.key is not None
        client = smp.SmpClient(
            smp.SmlLookup(gw.settings.sml_zone, gw.settings.sml_dns), smp_trust=[dev_pki.smp_ca.cert]
        )
        try:
            route = await client.find_endpoint(
                smp.ParticipantId.parse(NORWAY), smp.profile_services("INVOICE_AND_CREDIT_NOTE")[0].document_type
            )
        finally:
            await client.close()
        assert route.endpoint.certificate == renewed.cert
        async with aiohttp.ClientSession() as session, session.get(gw.url + "/metrics") as r:
            metrics = (await r.text()).splitlines()
        line = next(x for x in metrics if x.startswith('peppol_certificate_expiry_days{certificate="ap"}'))
        assert 728 < float(line.split()[-1]) <= 730  # the renewed one: two years


async def test_a_broken_renewal_keeps_the_old_pair(dev_pki: DevPki, tmp_path: Path) -> None:
    _write(tmp_path, dev_pki.access_points["ap1"])
    identity = load_identity(tmp_path / "ap.key.pem", tmp_path / "ap.cert.pem")
    watcher = CertificateWatcher([WatchedIdentity("ap", identity, tmp_path / "ap.key.pem", tmp_path / "ap.cert.pem")])
    (tmp_path / "ap.cert.pem").write_bytes(_cert_pem(dev_pki.access_points["ap2"].cert))  # not this key's
    assert await watcher.check_once() == []
    assert identity.cert == dev_pki.access_points["ap1"].cert


async def test_expiry_is_announced_from_thirty_days_before_once_a_day(dev_pki: DevPki, tmp_path: Path) -> None:
    _write(tmp_path, dev_pki.access_points["ap1"])
    identity = load_identity(tmp_path / "ap.key.pem", tmp_path / "ap.cert.pem")
    end = identity.cert.not_valid_after_utc
    now = [end - dt.timedelta(days=31)]
    watcher = CertificateWatcher(
        [WatchedIdentity("ap", identity, tmp_path / "ap.key.pem", tmp_path / "ap.cert.pem")], clock=lambda: now[0]
    )
    assert await watcher.check_once() == []
    now[0] = end - dt.timedelta(days=29)
    assert await watcher.check_once() == ["ap certificate.expiring"]
    assert await watcher.check_once() == []  # once a day
    now[0] = end + dt.timedelta(hours=1)
    assert await watcher.check_once() == ["ap certificate.expired"]
