"""A stand-in for the Peppol Directory, for the sandbox and the tests.

It speaks the two interfaces the gateway uses: the indexer (``PUT /indexer/1.0/`` with a
participant id as the body, ``DELETE /indexer/1.0/{participant}``), after which it reads the
participant's business card from the SMP that the SML names, as the real Directory does; and the
search API (``GET /search/1.0/json?q=...&country=...``), answered from what it indexed.
``GET /received`` tells what it was sent, for tests and curious people. No client certificate is
asked for: the sandbox speaks plain HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import aiohttp
import structlog
from aiohttp import web

import smp

__all__ = ["StandInDirectory", "search_answer", "standin_application"]

log = structlog.get_logger("gateway.dev.directory")


@dataclass
class _State:
    sml: smp.SmlLookup
    received: list[dict[str, Any]] = field(default_factory=list)
    cards: dict[str, smp.BusinessCard] = field(default_factory=dict)  # by participant key
    document_types: dict[str, list[str]] = field(default_factory=dict)


_STATE = web.AppKey("standin_directory", _State)


def _matches(card: smp.BusinessCard, terms: list[str], country: str | None) -> bool:
    if country and not any(e.country == country.upper() for e in card.entities):
        return False
    text = " ".join(
        [card.participant.value]
        + [
            " ".join(
                [*(n.name for n in e.names), e.country, e.geographical_information or ""]
                + [i.value for i in e.identifiers]
            )
            for e in card.entities
        ]
    ).lower()
    return all(term in text for term in terms)


def _entity_json(entity: smp.BusinessEntity) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "name": [{"name": n.name, **({"language": n.language} if n.language else {})} for n in entity.names],
        "countryCode": entity.country,
    }
    if entity.geographical_information:
        answer["geoInfo"] = entity.geographical_information
    if entity.identifiers:
        answer["identifiers"] = [{"scheme": i.scheme, "value": i.value} for i in entity.identifiers]
    if entity.websites:
        answer["websites"] = list(entity.websites)
    if entity.contacts:
        answer["contacts"] = [
            {k: v for k, v in (("type", c.type), ("name", c.name), ("phone", c.phone), ("email", c.email)) if v}
            for c in entity.contacts
        ]
    if entity.additional_information:
        answer["additionalInfo"] = entity.additional_information
    if entity.registration_date:
        answer["regDate"] = entity.registration_date.isoformat()
    return answer


def search_answer(
    cards: list[smp.BusinessCard], document_types: dict[str, list[str]], query: str, country: str | None, limit: int
) -> dict[str, Any]:
    """The search API's JSON (version 1.0) for the cards matching every term and the country."""
    terms = [t for t in query.lower().split() if t]
    found = [c for c in cards if _matches(c, terms, country)]
    matches = [
        {
            "participantID": {"scheme": c.participant.scheme, "value": c.participant.value},
            "docTypes": [
                {"scheme": d.split("::", 1)[0], "value": d.split("::", 1)[1]}
                for d in document_types.get(c.participant.key, [])
            ],
            "entities": [_entity_json(e) for e in c.entities],
        }
        for c in found[:limit]
    ]
    return {
        "version": "1.0",
        "total-result-count": len(found),
        "used-result-count": len(matches),
        "result-page-index": 0,
        "result-page-count": limit,
        "first-result-index": 0,
        "last-result-index": max(len(matches) - 1, 0),
        "query-terms": query,
        "creation-dt": datetime.now(UTC).isoformat(timespec="seconds"),
        "matches": matches,
    }


async def _fetch_card(state: _State, participant: smp.ParticipantId) -> tuple[smp.BusinessCard | None, list[str]]:
    """The participant's card and document types from its SMP, found through the SML."""
    location = await state.sml.locate(participant)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"{location.url}/businesscard/{participant.url_segment}") as response:
            card = smp.parse_business_card(await response.read()) if response.status == 200 else None
        async with session.get(f"{location.url}/{participant.url_segment}") as response:
            document_types = []
            if response.status == 200:
                _, listed = smp.parse_service_group(await response.read())
                document_types = [str(d) for d in listed]
    return card, document_types


async def _index(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    text = (await request.text()).strip()
    entry: dict[str, Any] = {"method": "PUT", "participant": text, "at": datetime.now(UTC).isoformat()}
    state.received.append(entry)
    try:
        participant = smp.ParticipantId.parse(unquote(text))
    except smp.IdentifierError as exc:
        entry["error"] = str(exc)
        return web.Response(status=400, text=f"{exc}\n")
    try:
        card, document_types = await _fetch_card(state, participant)
    except (smp.DiscoveryError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
        log.warning("standin_directory_fetch_failed", participant=str(participant), error=entry["error"])
        return web.Response(status=204)  # the real indexer queues and tries later; so is it logged here
    if card is None:
        state.cards.pop(participant.key, None)
        entry["indexed"] = False
    else:
        state.cards[participant.key] = card
        state.document_types[participant.key] = document_types
        entry["indexed"] = True
        entry["names"] = [n.name for e in card.entities for n in e.names]
    return web.Response(status=204)


async def _remove(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    raw = unquote(request.match_info["participant"])
    state.received.append({"method": "DELETE", "participant": raw, "at": datetime.now(UTC).isoformat()})
    with contextlib.suppress(smp.IdentifierError):
        state.cards.pop(smp.ParticipantId.parse(raw).key, None)
    return web.Response(status=204)


async def _search(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    limit = int(request.query["rpc"]) if request.query.get("rpc", "").isdigit() else 20
    answer = search_answer(
        list(state.cards.values()), state.document_types, request.query.get("q", ""),
        request.query.get("country"), max(1, min(limit, 1000)),
    )  # fmt: skip
    return web.json_response(answer)


async def _received(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    return web.json_response({"received": state.received, "indexed": sorted(state.cards)})


def standin_application(sml: smp.SmlLookup) -> web.Application:
    """The stand-in as an aiohttp application (its SML lookup finds the SMPs)."""
    app = web.Application()
    app[_STATE] = _State(sml)
    app.router.add_put("/indexer/1.0/", _index)
    app.router.add_put("/indexer/1.0", _index)
    app.router.add_delete("/indexer/1.0/{participant}", _remove)
    app.router.add_get("/search/1.0/json", _search)
    app.router.add_get("/received", _received)
    return app


class StandInDirectory:
    """The stand-in served on a loopback port by a thread of its own (the sandbox process is not
    an event loop)."""

    def __init__(self, zone: str, dns: str, port: int = 0, host: str = "127.0.0.1") -> None:
        self.zone, self.dns, self.host, self.port = zone, dns, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def indexer_url(self) -> str:
        return f"{self.url}/indexer/1.0/"

    @property
    def search_url(self) -> str:
        return f"{self.url}/search/1.0/json"

    def start(self) -> None:
        if self.port == 0:
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.port = int(sock.getsockname()[1])
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            runner = web.AppRunner(standin_application(smp.SmlLookup(self.zone, self.dns)), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, self.host, self.port).start()
            self._runner = runner

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="standin-directory", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise RuntimeError(f"the stand-in Directory did not start: {failure[0]}")
        log.info("standin_directory_started", url=self.url)

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None
