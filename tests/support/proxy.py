"""An AS4 proxy for tests of crashes between the receiver storing a message and the sender
getting its receipt."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web


class HoldingProxy:
    """Passes AS4 requests to the receiver at once and holds the receiver's answer of the next
    ``hold`` requests until their gate opens: the receiver has stored the message, the sender
    has no receipt yet."""

    def __init__(self, target: str, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.session = session
        self.hold = 0
        self.gates: list[asyncio.Event] = []

    async def serve(self, port: int) -> web.AppRunner:
        """Listen on ``127.0.0.1:port/as4``; clean the runner up after :meth:`open_all`."""
        app = web.Application()
        app.router.add_post("/as4", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self.session.post(
            self.target, data=body, headers={"Content-Type": request.headers["Content-Type"]}
        ) as answer:
            payload = await answer.read()
            status, content_type = answer.status, answer.headers["Content-Type"]
        if self.hold > 0:
            self.hold -= 1
            gate = asyncio.Event()
            self.gates.append(gate)
            await gate.wait()
        return web.Response(body=payload, status=status, headers={"Content-Type": content_type})

    def open_all(self) -> None:
        for gate in self.gates:
            gate.set()
