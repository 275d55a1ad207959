"""GET /v1/ping: liveness plus a real database check, in the standard envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.api.app import create_app
from gateway.core.config import load_settings
from gateway.dev.postgres import EmbeddedPostgres


async def _client(pool: asyncpg.Pool) -> TestClient:
    client = TestClient(TestServer(create_app(load_settings(environ={}), pool)))
    await client.start_server()
    return client


@pytest.fixture
async def client(db_pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    c = await _client(db_pool)
    yield c
    await c.close()


async def test_ping_answers_ok_with_database_ok(client: TestClient) -> None:
    response = await client.get("/v1/ping")
    assert response.status == 200
    body = await response.json()
    assert body["success"] is True
    assert body["data"]["status"] == "ok"
    assert body["data"]["database"] == "ok"
    assert body["data"]["version"]
    assert body["meta"]["request_id"] == response.headers["X-Request-Id"]
    assert body["meta"]["timestamp"].endswith("Z")


async def test_ping_keeps_a_well_formed_request_id_from_the_caller(client: TestClient) -> None:
    response = await client.get("/v1/ping", headers={"X-Request-Id": "trace-0001-abc"})
    assert (await response.json())["meta"]["request_id"] == "trace-0001-abc"


async def test_unknown_path_gets_the_error_envelope(client: TestClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status == 404
    body = await response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "not_found"


async def test_ping_answers_503_when_the_database_server_stops(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg-down", durable=False)
    dsn = server.start()
    stopped = False
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        client = await _client(pool)
        try:
            assert (await client.get("/v1/ping")).status == 200
            server.stop()
            stopped = True
            response = await client.get("/v1/ping")
            assert response.status == 503
            body = await response.json()
            assert body["data"]["database"] == "unavailable"
            assert body["success"] is False
        finally:
            await client.close()
            pool.terminate()
    finally:
        if not stopped:
            server.stop()
