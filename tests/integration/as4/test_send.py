"""Sending AS4 messages over HTTP on loopback: the verified receipt, the receiver's ebMS errors,
and transport failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import as4
from gateway.dev.pki import DevPki
from tests.support.as4 import build


@pytest.fixture(scope="module")
def ap1(dev_pki: DevPki):  # type: ignore[no-untyped-def]
    return dev_pki.access_points["ap1"]


@pytest.fixture(scope="module")
def ap2(dev_pki: DevPki):  # type: ignore[no-untyped-def]
    return dev_pki.access_points["ap2"]


@pytest.fixture
async def receiver(ap1, ap2) -> AsyncIterator[tuple[str, list[as4.ReceivedMessage]]]:  # type: ignore[no-untyped-def]
    got: list[as4.ReceivedMessage] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg = as4.parse_user_message(
                body,
                request.content_type and request.headers["Content-Type"],
                our_key=ap2.key,
                our_cert=ap2.cert,
            )
        except as4.As4Error as exc:
            return web.Response(body=as4.build_error_signal([exc], None), content_type="application/soap+xml")
        got.append(msg)
        return web.Response(body=as4.build_receipt(msg, ap2.key, ap2.cert), content_type="application/soap+xml")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/as4", handle)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/as4")), got
    await server.close()


async def test_send_message_returns_the_verified_receipt(ap1, ap2, receiver) -> None:  # type: ignore[no-untyped-def]
    url, got = receiver
    message = build(ap1, ap2)
    async with aiohttp.ClientSession() as session:
        receipt = await as4.send_message(session, url, message, receiver_cert=ap2.cert)
    assert receipt.ref_to_message_id == message.header.message_id
    assert got[0].header.message_id == message.header.message_id


async def test_send_message_raises_the_receivers_ebms_error(ap1, ap2, receiver) -> None:  # type: ignore[no-untyped-def]
    url, _ = receiver
    message = build(ap1, ap1)  # encrypted for the wrong access point
    async with aiohttp.ClientSession() as session:
        with pytest.raises(as4.EbmsErrorReceived) as info:
            await as4.send_message(session, url, message)
    assert info.value.errors[0].code == "EBMS:0102"
    assert not info.value.retryable


async def test_send_message_to_a_closed_port_is_a_retryable_transport_error(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    message = build(ap1, ap2)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(as4.TransportError) as info:
            await as4.send_message(session, "http://127.0.0.1:9/as4", message, timeout=5)
    assert info.value.retryable


async def test_send_message_reports_plain_http_errors_with_status(ap1, ap2) -> None:  # type: ignore[no-untyped-def]
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_post("/as4", fail)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(as4.HttpStatusError) as info:
                await as4.send_message(session, str(server.make_url("/as4")), build(ap1, ap2))
        assert info.value.status == 503 and info.value.retryable
    finally:
        await server.close()
