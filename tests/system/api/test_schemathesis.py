"""schemathesis (property-based, from the OpenAPI document) finds no failure against the live app."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

import smp
from gateway.dev.directory import standin_application
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki
from gateway.security.credentials import create_operator
from tests.support.api import token
from tests.support.gateways import in_process_gateway, new_database
from tests.support.services import SML_ZONE


@pytest.mark.skipif(shutil.which("st", path=str(Path(sys.executable).parent)) is None, reason="schemathesis missing")
async def test_schemathesis_finds_no_failure(pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns) -> None:
    # The Peppol Directory's indexer and search API: the stand-in, so nothing leaves the machine.
    directory = TestServer(standin_application(smp.SmlLookup(SML_ZONE, knot.address)), host="127.0.0.1")
    await directory.start_server()
    base = str(directory.make_url("")).rstrip("/")
    async with (
        in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False,
                           PEPPOL_HTTP_RATE_LIMIT="1000000", PEPPOL_DIRECTORY_INDEXER_URL=f"{base}/indexer/1.0/",
                           PEPPOL_DIRECTORY_SEARCH_URL=f"{base}/search/1.0/json") as gw,
        aiohttp.ClientSession() as session,
    ):  # fmt: skip
        operator_id, operator_key = await create_operator(gw.pool, "Fuzzing operator")
        operator = await token(session, gw.url, str(operator_id), operator_key)
        status, body = await operator.call(
            "POST", "/v1/companies", json={"name": "Fuzz AS", "country": "NO", "business_id": "991825827"}
        )
        assert status == 201
        company = await token(session, gw.url, body["data"]["id"], body["data"]["api_key"])
        st = str(Path(sys.executable).parent / "st")
        proc = await asyncio.create_subprocess_exec(
            st, "run", f"{gw.url}/v1/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--header", f"Authorization: Bearer {company.token}",
            "--max-examples", "15", "--workers", "1", "--phases", "examples,coverage,fuzzing",
            "--suppress-health-check", "all", "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 600)
        text = out.decode()
        Path("/tmp/st-out.txt").write_text(text)
        assert proc.returncode == 0, text[-6000:]
    await directory.close()
