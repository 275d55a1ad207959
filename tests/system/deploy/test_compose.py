"""deploy/compose: the sandbox network for container users. No compose engine or registry runs
here, so its parts are checked one by one: every file it mounts exists, the gateways' settings
load, the seed commands are valid commands, the database script runs on PostgreSQL, and the DNS
configuration works in a real Knot server that the gateways' SML registration updates."""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import dns.asyncresolver
import pytest
import yaml

import smp
from gateway.cli.main import build_parser
from gateway.core.config import load_settings
from tests.support.paths import ROOT

COMPOSE = ROOT / "deploy" / "compose"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def test_every_mounted_file_exists_and_the_gateways_use_the_built_image() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).is_file(), f"{name} mounts {source}"
    for name in ("ap-a", "ap-b", "seed-a", "seed-b", "pki"):
        assert services[name]["image"] == "localhost/peppol-gateway:dev"
    assert {"postgres", "dns", "ap-a", "ap-b"} <= set(services)


@pytest.mark.parametrize("name", ["ap-a", "ap-b", "seed-a", "seed-b"])
def test_the_gateway_settings_load(name: str) -> None:
    settings = load_settings(environ=_environment(_compose()["services"][name]))
    assert settings.sml_zone == "sml.sandbox.test" and settings.sml_update_server == "172.28.0.53:53"


@pytest.mark.parametrize("name", ["seed-a", "seed-b"])
def test_the_seed_commands_are_valid_commands(name: str) -> None:
    script = _compose()["services"][name]["command"][0]
    parser, _ = build_parser()
    commands = [shlex.split(part) for part in script.split("&&")]
    assert len(commands) >= 2
    for command in commands:
        assert command[0] == "peppol-gateway"
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown option


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
async def test_the_database_script_creates_one_database_per_access_point(pg_dsn: str) -> None:
    # run as the postgres image runs it: with psql, one statement at a time
    done = subprocess.run(
        ["psql", pg_dsn, "-v", "ON_ERROR_STOP=1", "-f", str(COMPOSE / "init-databases.sql")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert done.returncode == 0, done.stderr
        names = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        assert {"sandbox_ap_a", "sandbox_ap_b"} <= names
    finally:
        for name in ("sandbox_ap_a", "sandbox_ap_b"):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.close()


@pytest.mark.skipif(shutil.which("knotd") is None, reason="knotd is not installed")
async def test_the_dns_configuration_accepts_the_gateways_sml_updates(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "storage").mkdir()
    (tmp_path / "zones").mkdir()
    shutil.copy(COMPOSE / "sml.sandbox.test.zone", tmp_path / "zones")
    config = (
        (COMPOSE / "knot.conf").read_text()
        .replace("0.0.0.0@53", f"127.0.0.1@{port}")
        .replace("/storage", str(tmp_path / "storage"))
        .replace("/zones", str(tmp_path / "zones"))
    )  # fmt: skip
    (tmp_path / "knot.conf").write_text(config)
    knotd = subprocess.Popen(["knotd", "-c", str(tmp_path / "knot.conf")], stderr=subprocess.DEVNULL)
    try:
        settings = load_settings(environ=_environment(_compose()["services"]["ap-a"]))
        name, _, secret = (settings.sml_update_key or "").partition(":")
        registrar = smp.LocalSml(
            "sml.sandbox.test", f"127.0.0.1:{port}", "http://172.28.0.21:8080/smp", key_name=name, key_secret=secret
        )
        participant = smp.ParticipantId.parse("0192:991825827")
        deadline = time.monotonic() + 10
        while True:
            try:
                await registrar.register(participant)
                break
            except smp.RegistrationError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = ["127.0.0.1"], port
        answer = await resolver.resolve(smp.dns_name(participant, "sml.sandbox.test"), "NAPTR")
        assert "http://172.28.0.21:8080/smp" in answer[0].regexp.decode()
    finally:
        knotd.terminate()
        knotd.wait(timeout=10)
