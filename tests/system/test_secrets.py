"""Secrets never reach a log line or a printed setting, and a database outage answers 503.

The integration test runs ``peppol-gateway serve`` against a real PostgreSQL protected by a
password, stops the database under it, and reads everything the gateway logged, in both formats.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api.middleware import request_context
from gateway.core.config import Settings
from gateway.core.database import database_unavailable
from gateway.core.logs import configure_logging
from gateway.dev.pki import DevPki
from gateway.dev.postgres import EmbeddedPostgres
from tests.support.as4 import build, header

SENTINEL = "Sup3rS3cretValue"
_SECRET_NAME = re.compile(r"password|secret|key|token|dsn|credential|url", re.IGNORECASE)


def _settings(name: str, value: str) -> Settings:
    values: dict[str, typing.Any] = {name: value}
    return Settings(**values)


def _str_fields() -> list[dataclasses.Field[typing.Any]]:
    hints = typing.get_type_hints(Settings)
    return [f for f in dataclasses.fields(Settings) if hints[f.name] in (str, str | None)]


def test_every_secret_looking_setting_is_marked_and_printed_masked() -> None:
    secret_named = [f for f in _str_fields() if _SECRET_NAME.search(f.name) and not f.name.endswith("url")]
    assert {f.name for f in secret_named} >= {"sml_update_key", "archive_s3_secret_key", "archive_s3_access_key"}
    for field in secret_named:
        assert "mask" in field.metadata, f"{field.name} looks secret: declare it with _secret()"
        settings = _settings(field.name, f"keyname:{SENTINEL}")
        for printed in (repr(settings), str(settings), f"{settings}", repr([settings])):
            assert SENTINEL not in printed, field.name
        assert getattr(settings, field.name) == f"keyname:{SENTINEL}"  # the value itself stays usable


def test_every_url_setting_prints_its_password_masked() -> None:
    for field in _str_fields():
        settings = _settings(field.name, f"postgresql://someone:{SENTINEL}@db.example:5432/gateway")
        assert SENTINEL not in repr(settings), field.name


def test_database_url_keeps_user_host_and_database_visible() -> None:
    settings = Settings(database_url=f"postgresql://postgres:{SENTINEL}@db.example:5432/gateway?sslmode=require")
    assert "database_url='postgresql://postgres:***@db.example:5432/gateway?sslmode=require'" in repr(settings)
    assert "sml_update_key=None" in repr(settings)
    assert "sml_update_key='tsig1:***'" in repr(Settings(sml_update_key=f"tsig1:{SENTINEL}"))


def _raise_holding_settings(settings: Settings) -> None:
    password = SENTINEL  # a frame variable a traceback showing them would print
    dsn = settings.database_url
    raise RuntimeError(f"cannot reach the database {dsn} ({len(password)})")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_logged_exception_prints_no_frame_variables_and_no_secret(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = structlog.get_config()
    configure_logging(fmt, "info")
    try:
        try:
            _raise_holding_settings(Settings(database_url=f"postgresql://postgres:{SENTINEL}@127.0.0.1:1/db"))
        except RuntimeError:
            structlog.get_logger("test").exception("step_failed", settings=Settings(archive_s3_secret_key=SENTINEL))
        err = capsys.readouterr().err
    finally:
        structlog.configure(**saved)
    assert "step_failed" in err and "Traceback" in err and "_raise_holding_settings" in err
    assert SENTINEL not in err
    assert not re.search(r"\blocals\b|╭", err)
    assert "postgresql://postgres:***@127.0.0.1:1/db" in err
    if fmt == "json":
        assert isinstance(json.loads(err.strip())["exception"], str)


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_stdlib_records_are_rendered_alike_and_masked(fmt: str) -> None:
    saved, root = structlog.get_config(), logging.getLogger()
    handlers = list(root.handlers)
    for handler in handlers:
        root.removeHandler(handler)
    try:
        configure_logging(fmt, "info")
        formatter = root.handlers[0].formatter
        assert formatter is not None
        try:
            _raise_holding_settings(Settings(database_url=f"postgresql://postgres:{SENTINEL}@127.0.0.1:1/db"))
        except RuntimeError:
            record = logging.LogRecord(
                "asyncpg.pool", logging.WARNING, __file__, 1, "connecting to %s", (f"postgres://u:{SENTINEL}@h/d",),
                sys.exc_info(),
            )  # fmt: skip
        text = formatter.format(record)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        structlog.configure(**saved)
    assert SENTINEL not in text
    assert "connecting to postgres://u:***@h/d" in text and "Traceback" in text
    if fmt == "json":
        line = json.loads(text)
        assert line["logger"] == "asyncpg.pool" and line["level"] == "warning"


def test_database_unreachable_errors_are_recognised() -> None:
    import asyncpg

    assert database_unavailable(ConnectionRefusedError(111, "Connect call failed"))
    assert database_unavailable(OSError(113, "No route to host"))
    assert database_unavailable(TimeoutError())
    assert database_unavailable(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert database_unavailable(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert not database_unavailable(FileNotFoundError(2, "No such file"))
    assert not database_unavailable(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert not database_unavailable(ValueError("bad"))
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as exc:
            raise RuntimeError("query failed") from exc
    except RuntimeError as wrapped:
        assert database_unavailable(wrapped)


@pytest.mark.parametrize("path", ["/as4", "/v1/companies"])
async def test_a_database_outage_answers_503_with_retry_after(path: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")

    app = web.Application(middlewares=[request_context])
    app.router.add_route("*", path, handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path, data=b"x")
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        body = await response.json()
        assert body["success"] is False
        assert body["error"]["code"] == "database_unavailable"


# --- the real gateway, a real database that goes away ---------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status), dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _wait_for_ping(port: int, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return _get(f"http://127.0.0.1:{port}/v1/ping")[0]
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the gateway did not answer /v1/ping")


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_database_down_answers_503_and_logs_no_secret_in_either_format(tmp_path: Path, dev_pki: DevPki) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", durable=False)
    dsn = server.start()
    password = urlsplit(dsn).password
    assert password and len(password) >= 16
    d = dev_pki.directory
    common = {
        "DATABASE_URL": dsn,
        "PEPPOL_LOG_LEVEL": "info",
        "PEPPOL_WORKERS_POLL_INTERVAL": "0.2",
        "PEPPOL_AP_KEY": str(d / "ap1.key.pem"),
        "PEPPOL_AP_CERT": str(d / "ap1.cert.pem"),
        "PEPPOL_AP_TRUST": str(d / "ap-ca.cert.pem"),
        "PEPPOL_SMP_KEY": str(d / "smp.key.pem"),
        "PEPPOL_SMP_CERT": str(d / "smp.cert.pem"),
        "PEPPOL_SMP_TRUST": str(d / "smp-ca.cert.pem"),
    }
    gateways: dict[str, tuple[int, subprocess.Popen[bytes], Path]] = {}
    stopped = False
    try:
        for fmt in ("console", "json"):
            port, log = _free_port(), tmp_path / f"{fmt}.log"
            env = {**common, "PEPPOL_LOG_FORMAT": fmt, "PEPPOL_HTTP_PORT": str(port)}
            gateways[fmt] = (port, _serve(env, log), log)
        for port, _, _ in gateways.values():
            assert _wait_for_ping(port) == 200
        server.stop()
        stopped = True
        for port, _, _ in gateways.values():
            for _ in range(3):  # a pooled connection the stop cut, then fresh connects refused
                status, headers, raw = _get(
                    f"http://127.0.0.1:{port}/v1/companies", {"Authorization": "Bearer pk_test_not_a_real_key"}
                )
                assert status == 503, raw[:500]
                assert headers["Retry-After"] == "5"
                body = json.loads(raw)
                assert body["success"] is False
                assert body["error"]["code"] == "database_unavailable"
            assert _get(f"http://127.0.0.1:{port}/v1/ping")[0] == 503
            # another access point sends a real message: it must be told to retry, not refused
            message = build(
                dev_pki.access_points["ap2"], dev_pki.access_points["ap1"], header=header("POP000002", "POP000001")
            )
            status, headers, raw = _get(
                f"http://127.0.0.1:{port}/as4", {"Content-Type": message.content_type}, bytes(message.body)
            )
            assert status == 503, raw[:500]
            assert headers["Retry-After"] == "5"
        time.sleep(1.0)  # the background workers meet the outage too
    finally:
        for _, proc, _ in gateways.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, _ in gateways.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not stopped:
            server.stop()

    for fmt, (_, _, log) in gateways.items():
        text = log.read_text()
        assert "database_unavailable" in text, text[-3000:]
        assert password not in text, fmt
        assert dsn not in text, fmt
        assert "locals" not in text, fmt
        if fmt == "json":
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line
            assert any(line.get("event") == "database_unavailable" for line in lines)
            assert not any("locals" in json.dumps(line) for line in lines)
