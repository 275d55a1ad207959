"""``peppol-gateway sandbox`` (what ``make run`` starts): a complete local Peppol network.

One embedded PostgreSQL (a database per access point), a Knot DNS server as the SML zone, a
stand-in Peppol Directory (indexer and search, served by this process), and two access points,
AP-A and AP-B, each a ``peppol-gateway serve`` process with its own certificate, database and SMP.
Demo companies are registered on each and published in SMP and SML. The facts
go to ``.sandbox/sandbox.json``; Ctrl-C stops everything (exit status 0).

If an access point dies, the sandbox logs which one (name, pid, exit code or signal), stops the
rest of the network and exits with status 3 (:data:`EXIT_ACCESS_POINT_DIED`). The access points
and DNS server end by themselves if the sandbox itself is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

import smp
from gateway.core.database import create_databases
from gateway.core.migrate import apply_migrations
from gateway.core.process import parent_death_signal
from gateway.dev.directory import StandInDirectory
from gateway.dev.dns import KnotDns
from gateway.dev.pki import create_dev_pki, dev_pki_complete
from gateway.dev.postgres import EmbeddedPostgres
from gateway.directory import queries as directory_queries
from gateway.directory.business_cards import default_card
from gateway.directory.profiles import DEFAULT_VERSION, profile_services
from gateway.directory.registration import enrol_company
from gateway.directory.states import IndexerAction
from gateway.security import queries as security_queries
from gateway.security.credentials import create_api_key, create_operator

__all__ = ["EXIT_ACCESS_POINT_DIED", "run_sandbox"]

log = structlog.get_logger("gateway.dev.sandbox")

ZONE = "sml.sandbox.test"
EXIT_ACCESS_POINT_DIED = 3  # an access point exited while the network ran


@dataclass(frozen=True)
class AccessPoint:
    name: str
    stem: str  # dev PKI file stem
    database: str
    preferred_port: int


@dataclass(frozen=True)
class DemoCompany:
    name: str
    country: str
    participant: str
    access_point: str
    profiles: tuple[str, ...]


ACCESS_POINTS = (
    AccessPoint("AP-A", "ap1", "sandbox_ap_a", 8080),
    AccessPoint("AP-B", "ap2", "sandbox_ap_b", 8081),
)
# Between them the two companies receive every document type in examples/.
COMPANIES = (
    DemoCompany(
        "Nordic Supplies AS", "NO", "0192:991825827", "AP-A",
        ("INVOICE_AND_CREDIT_NOTE", "ORDER", "ORDER@EHF30", "ORDER_RESPONSE", "CATALOGUE_RESPONSE",
         "INVOICE_RESPONSE", "MESSAGE_LEVEL_RESPONSE"),
    ),
    DemoCompany(
        "Suomen Osto Oy", "FI", "0216:003720774740", "AP-B",
        ("INVOICE_AND_CREDIT_NOTE", "ORDER", "ORDER_RESPONSE", "DESPATCH_ADVICE", "CATALOGUE",
         "INVOICE_RESPONSE", "MESSAGE_LEVEL_RESPONSE"),
    ),
    # Stands in for OpenPeppol's reporting participant, so the monthly TSR and EUSR of both
    # access points travel the whole path locally.
    DemoCompany("OpenPeppol reporting (stand-in)", "BE", "9925:be0848934496", "AP-B", ("PEPPOL_REPORTING",)),
)  # fmt: skip


def demo_services(company: DemoCompany) -> list[tuple[str, str]]:
    """(document type, process) pairs behind a demo company's profiles (``NAME[@VERSION]``)."""
    services = []
    for entry in company.profiles:
        profile, _, version = entry.partition("@")
        services += profile_services([profile], version or DEFAULT_VERSION)
    return services


def _port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def _toml(values: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for section, table in values.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


async def _prepare_databases(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await create_databases(conn, [ap.database for ap in ACCESS_POINTS])
    finally:
        await conn.close()
    for ap in ACCESS_POINTS:
        db = await asyncpg.connect(_with_database(admin_dsn, ap.database))
        try:
            await apply_migrations(db)
        finally:
            await db.close()


async def _seed(
    admin_dsn: str, knot: KnotDns, smp_urls: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Register the demo companies (idempotent) and publish every participant in the SML. Each
    start makes fresh API keys (the old sandbox keys are revoked: secrets are never stored)."""
    companies: list[dict[str, Any]] = []
    operators: list[dict[str, Any]] = []
    for ap in ACCESS_POINTS:
        conn = await asyncpg.connect(_with_database(admin_dsn, ap.database))
        try:
            await security_queries.revoke_labelled_keys(conn, "sandbox")
            operator_id = await security_queries.operator_named(conn, "Sandbox Operator")
            if operator_id is None:
                operator_id, _ = await create_operator(conn, "Sandbox Operator")
            _, operator_key = await create_api_key(conn, operator_id=operator_id, label="sandbox")
            operators.append({"access_point": ap.name, "operator_id": str(operator_id), "api_key": operator_key})
            for demo in (c for c in COMPANIES if c.access_point == ap.name):
                participant = smp.ParticipantId.parse(demo.participant)
                company_id = await enrol_company(
                    conn,
                    name=demo.name,
                    country=demo.country,
                    business_id=participant.local_id,
                    participant=participant,
                    services=demo_services(demo),
                    operator_id=operator_id,
                )
                await _publish_card(conn, company_id)
                _, api_key = await create_api_key(conn, company_id=company_id, label="sandbox")
                companies.append(
                    {
                        "name": demo.name,
                        "country": demo.country,
                        "access_point": ap.name,
                        "participant_id": str(participant),
                        "company_id": str(company_id),
                        "api_key": api_key,
                        "profiles": list(demo.profiles),
                    }
                )
            registrar = smp.LocalSml(
                ZONE, knot.address, smp_urls[ap.name], key_name=knot.key_name, key_secret=knot.secret
            )
            for served in await directory_queries.served_participants(conn):
                await registrar.register(served)
        finally:
            await conn.close()
    return companies, operators


async def _publish_card(conn: asyncpg.Connection, company_id: uuid.UUID) -> None:
    """A demo company's business card, published: the access point tells the stand-in Directory
    once it runs, so the companies can be found with /v1/directory/search."""
    company = await directory_queries.company(conn, company_id)
    assert company is not None
    card = default_card(company)
    async with conn.transaction():
        await directory_queries.save_business_card(conn, company_id, publish=True, card=card)
        participants = await directory_queries.company_participants(conn, company_id)
        await directory_queries.queue_indexer_notifications(conn, company_id, participants, IndexerAction.INDEX)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/ping", timeout=1) as response:  # noqa: S310 - our loopback URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def describe_exit(returncode: int) -> dict[str, int | str]:
    """Log fields for how a child process ended: its exit code, or the signal that killed it."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return {"signal": name}
    return {"exit_code": returncode}


def run_sandbox(root: Path, data_dir: Path) -> int:
    """Run the network until SIGINT/SIGTERM; returns the exit status."""
    stop = {"now": False}

    def request_stop(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    pki_dir = root / "certs-dev"
    if not dev_pki_complete(pki_dir):
        create_dev_pki(pki_dir)
    sandbox_dir = root / ".sandbox"
    sandbox_dir.mkdir(exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    postgres = EmbeddedPostgres(data_dir)
    knot = KnotDns(data_dir / "dns", ZONE)
    directory: StandInDirectory | None = None
    try:
        admin_dsn = postgres.start()
        knot.start()
        directory = StandInDirectory(ZONE, knot.address, _port(8090))
        directory.start()
        asyncio.run(_prepare_databases(admin_dsn))
        ports = {ap.name: _port(ap.preferred_port) for ap in ACCESS_POINTS}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        smp_urls = {name: f"{url}/smp" for name, url in urls.items()}
        # Companies and SML entries first: the gateways act on them as soon as they start
        # (the monthly reports go to the reporting stand-in).
        companies, operators = asyncio.run(_seed(admin_dsn, knot, smp_urls))
        access_points: list[dict[str, Any]] = []
        for ap in ACCESS_POINTS:
            config = sandbox_dir / f"{ap.name.lower()}.toml"
            config.write_text(
                _toml(
                    {
                        "database": {"url": _with_database(admin_dsn, ap.database)},
                        "http": {"host": "127.0.0.1", "port": ports[ap.name], "public_url": urls[ap.name]},
                        "log": {"format": "console", "level": "info"},
                        "ap": {
                            "key": str(pki_dir / f"{ap.stem}.key.pem"),
                            "cert": str(pki_dir / f"{ap.stem}.cert.pem"),
                            "trust": [str(pki_dir / "ap-ca.cert.pem")],
                            "revocation": "soft-fail",
                        },
                        "smp": {
                            "url": smp_urls[ap.name],
                            "key": str(pki_dir / "smp.key.pem"),
                            "cert": str(pki_dir / "smp.cert.pem"),
                            "trust": [str(pki_dir / "smp-ca.cert.pem")],
                        },
                        "sml": {
                            "zone": ZONE,
                            "dns": knot.address,
                            "update_server": knot.address,
                            "update_key": f"{knot.key_name}:{knot.secret}",
                        },
                        "workers": {"outbound": 4, "poll_interval": 0.5, "retry_initial": 2, "retry_max": 60},
                        "directory": {
                            "indexer_url": directory.indexer_url,
                            "search_url": directory.search_url,
                            "retry_interval": 10,
                        },
                    }
                )
            )
            os.chmod(config, 0o600)
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # SIGTERM, the orderly stop, if the sandbox dies without stopping it
                preexec_fn=parent_death_signal(signal.SIGTERM),
            )
            processes.append(proc)
            access_points.append(
                {
                    "name": ap.name,
                    "api_url": urls[ap.name],
                    "as4_url": f"{urls[ap.name]}/as4",
                    "smp_url": smp_urls[ap.name],
                    "config": str(config),
                    "certificate": str(pki_dir / f"{ap.stem}.cert.pem"),
                    "seat_id": "POP000001" if ap.stem == "ap1" else "POP000002",
                }
            )
        for ap, proc in zip(ACCESS_POINTS, processes, strict=True):
            _wait_ready(urls[ap.name], proc)
        facts = {
            "access_points": access_points,
            "companies": companies,
            "operators": operators,
            "smp_url": smp_urls["AP-A"],
            "smp_urls": smp_urls,
            "sml_zone": ZONE,
            "dns": knot.address,
            "directory": {
                "indexer_url": directory.indexer_url,
                "search_url": directory.search_url,
                "received_url": f"{directory.url}/received",
            },
            "database_url": admin_dsn,
            "pki": {
                "root_cert": str(pki_dir / "root-ca.cert.pem"),
                "ap_ca_cert": str(pki_dir / "ap-ca.cert.pem"),
                "ap_ca_key": str(pki_dir / "ap-ca.key.pem"),
                "smp_ca_cert": str(pki_dir / "smp-ca.cert.pem"),
            },
        }
        facts_file = sandbox_dir / "sandbox.json"
        facts_file.write_text(json.dumps(facts, indent=2) + "\n")
        os.chmod(facts_file, 0o600)
        _announce(facts, root)
        status = 0
        while not stop["now"]:
            for ap, proc in zip(ACCESS_POINTS, processes, strict=True):
                if proc.poll() is not None:
                    log.error("sandbox_access_point_died", name=ap.name, pid=proc.pid, **describe_exit(proc.returncode))
                    status = EXIT_ACCESS_POINT_DIED
                    stop["now"] = True
            time.sleep(0.2)
        return status
    finally:
        for proc in processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if directory is not None:
            directory.stop()
        knot.stop()
        postgres.stop()
        log.info("sandbox_stopped")


def _announce(facts: dict[str, Any], root: Path) -> None:
    a, b = facts["access_points"]
    cli = f"{root}/.venv/bin/peppol-gateway"
    print(
        f"""
Peppol sandbox is running (Ctrl-C stops everything)

  AP-A  {a["api_url"]}   AS4 {a["as4_url"]}   SMP {a["smp_url"]}   seat {a["seat_id"]}
  AP-B  {b["api_url"]}   AS4 {b["as4_url"]}   SMP {b["smp_url"]}   seat {b["seat_id"]}
  SML   zone {facts["sml_zone"]} on DNS {facts["dns"]}
  Peppol Directory (stand-in)  {facts["directory"]["search_url"]}
  companies:""",
        flush=True,
    )
    for company in facts["companies"]:
        print(f"    {company['name']:<20} {company['participant_id']}  on {company['access_point']}")
    print(
        f"""
Send an invoice from Nordic Supplies AS (AP-A) to Suomen Osto Oy (AP-B):

  {cli} --config {a["config"]} send examples/invoice.xml

then look in the Finnish company's mailbox on AP-B:

  {cli} --config {b["config"]} mailbox

Facts for scripts: .sandbox/sandbox.json
""",
        flush=True,
    )
