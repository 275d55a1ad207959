"""Limits that hold across replicas: two gateway processes on one database give an API key its
rate limit once, not twice."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg

from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security.credentials import create_operator
from tests.support.gateways import GatewayProcess, free_port, gateway_env, new_database


async def test_two_processes_share_one_rate_limit_per_key(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns
) -> None:
    dsn = await new_database(pg_dsn, template_db)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        operator_id, key = await create_operator(pool, "Busy operator")
    finally:
        await pool.close()
    processes = [
        GatewayProcess(
            gateway_env(dev_pki, "ap1", dsn, free_port(), knot, PEPPOL_HTTP_RATE_LIMIT="6", PEPPOL_WORKERS_OUTBOUND="0")
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            await asyncio.to_thread(process.start)
        async with aiohttp.ClientSession() as session:
            form = {"grant_type": "client_credentials", "client_id": str(operator_id), "client_secret": key}
            async with session.post(processes[0].url + "/oauth2/token", data=form) as r:
                bearer = {"Authorization": f"Bearer {(await r.json())['access_token']}"}

            async def call(process: GatewayProcess) -> int:
                async with session.get(process.url + "/v1/companies", headers=bearer) as r:
                    return r.status

            # Ten requests, alternating between the replicas, faster than the bucket refills
            # (6 a minute: one token every 10 s).
            statuses = [await call(processes[i % 2]) for i in range(10)]
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)
    assert statuses.count(200) == 6
    assert statuses[6:] == [429, 429, 429, 429]
