"""Protecting partners and ourselves: a circuit breaker and a concurrency limit per receiving
access point endpoint.

After ``threshold`` transport failures in a row an endpoint's circuit opens: nothing is sent
there for ``cooldown`` seconds (doubling while probes keep failing, up to ``max_cooldown``), then
one probe delivery is let through; its success closes the circuit. Documents waiting for an
open circuit are put back in the queue for when it may close, without counting an attempt.

The circuit lives in PostgreSQL (``endpoint_circuits``), shared by every gateway process on the
database, so N replicas give a failing partner one count of failures and one probe, not N. Each
move is one atomic statement (:mod:`gateway.outbound.queries`): a failure counts and, at the
threshold, opens the circuit; when the cooldown is over one process claims the single probe with
a conditional update (a probe lease, so the probe of a process that died passes to another);
a success closes it. A healthy endpoint costs one read a second per process (``clean_for``): a
circuit read closed without failures is taken as such for that long (a transport failure here
forgets it at once), and a success is written only when the admission saw failures or a circuit
that was not closed. Another process's failures are so seen within a second.

The limit on concurrent deliveries per endpoint (``max_concurrent``, ``workers.per_endpoint``)
stays per process: it keeps one slow partner from holding every worker of this process, which
is a local resource. A delivery waits briefly for a free slot, then gives its job back.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import structlog

from gateway.outbound import queries
from gateway.outbound.states import CircuitState, check_circuit_move

__all__ = ["Admission", "EndpointGuard", "Verdict", "decide"]

log = structlog.get_logger("gateway.outbound.circuits")


@dataclass(frozen=True)
class Verdict:
    """What admission does with a circuit as read: go, wait ``wait`` seconds, or try for the probe."""

    action: Literal["go", "wait", "probe"]
    wait: float = 0.0


def probe_wait(cooldown: float) -> float:
    """How long others wait while a probe runs: a fraction of the cooldown, at least a second."""
    return max(1.0, cooldown / 4)


def decide(view: queries.CircuitView | None) -> Verdict:
    """The admission rule, without I/O: closed → go; open and not due → wait until due; open
    and due, or half open with nobody holding the probe → try to claim the probe; half open
    with a probe running → wait."""
    if view is None or view.state is CircuitState.CLOSED:
        return Verdict("go")
    if view.state is CircuitState.OPEN:
        if view.opened_until is not None and view.now < view.opened_until:
            return Verdict("wait", (view.opened_until - view.now).total_seconds())
        return Verdict("probe")
    if view.probe_until is None or view.probe_until <= view.now:
        return Verdict("probe")
    return Verdict("wait", probe_wait(view.cooldown))


@dataclass(frozen=True)
class Admission:
    """The answer to "may a delivery to this endpoint start now?"."""

    wait: float  # 0: go now, holding one of the endpoint's slots until finished()
    state: CircuitState  # the circuit, as this admission saw (or made) it
    probe: bool = False  # this delivery is the circuit's single probe
    clean: bool = False  # closed without failures: a success needs no write

    @property
    def reason(self) -> str:
        return "circuit open" if self.state is not CircuitState.CLOSED else "endpoint at its concurrency limit"


class EndpointGuard:
    """Decides, per endpoint URL, whether a delivery may start now; one per process, sharing
    the circuits of every process through the database."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        max_cooldown: float = 900.0,
        max_concurrent: int = 8,
        probe_lease: float = 120.0,
        clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
        clean_for: float = 1.0,
    ) -> None:
        self.pool = pool
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.max_concurrent = max_concurrent
        self.probe_lease = probe_lease
        self.clock = clock  # None: the database's clock, the same for every process
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.slots: dict[str, asyncio.Semaphore] = {}
        self.clean_for = clean_for
        self._clean_until: dict[str, float] = {}  # url -> monotonic time its clean reading holds to

    def _now(self) -> datetime | None:
        return None if self.clock is None else self.clock()

    async def admit(self, url: str, wait: float = 2.0) -> Admission:
        """Whether a delivery to ``url`` may start now (``wait == 0``; it then holds one of the
        endpoint's slots until :meth:`finished`), or the seconds to wait before trying again. A
        delivery waits up to ``wait`` seconds for a free slot before giving its job back."""
        view = await self._read(url)
        verdict = decide(view)
        state = CircuitState.CLOSED if view is None else view.state
        if verdict.action == "wait":
            return Admission(verdict.wait, state)
        probe = False
        if verdict.action == "probe":
            assert view is not None
            if not await queries.claim_probe(self.pool, url, self.owner, self.probe_lease, self._now()):
                return Admission(probe_wait(view.cooldown), CircuitState.HALF_OPEN)
            state = check_circuit_move(state, CircuitState.HALF_OPEN)
            probe = True
            log.warning("endpoint_circuit", endpoint=url, state=state, failures=view.failures, probe=self.owner)
        slots = self.slots.get(url)
        if slots is None:
            slots = self.slots[url] = asyncio.Semaphore(self.max_concurrent)
        try:
            await asyncio.wait_for(slots.acquire(), wait)
        except TimeoutError:
            if probe:
                await queries.release_probe(self.pool, url, self.owner)
            return Admission(0.5, state)
        clean = view is None or (view.state is CircuitState.CLOSED and view.failures == 0)
        return Admission(0.0, state, probe=probe, clean=clean)

    async def _read(self, url: str) -> queries.CircuitView | None:
        """The endpoint's circuit: from the database, or clean (None) as read less than
        ``clean_for`` seconds ago."""
        now = time.monotonic()
        if self._clean_until.get(url, 0.0) > now:
            return None
        view = await queries.read_circuit(self.pool, url, self._now())
        if view is None or (view.state is CircuitState.CLOSED and view.failures == 0):
            self._clean_until[url] = now + self.clean_for
        else:
            self._clean_until.pop(url, None)
        return view

    async def finished(
        self, url: str, admission: Admission, *, transport_failure: bool
    ) -> queries.CircuitChange | None:
        """Record how a started delivery ended; the change when the circuit's state changed."""
        slots = self.slots.get(url)
        if slots is not None:
            slots.release()
        if transport_failure:
            self._clean_until.pop(url, None)
            change = await queries.circuit_failed(
                self.pool, url, threshold=self.threshold, cooldown=self.base_cooldown,
                max_cooldown=self.max_cooldown, now=self._now(),
            )  # fmt: skip
        elif admission.clean:
            return None
        else:
            found = await queries.circuit_succeeded(self.pool, url, self._now())
            if found is None:
                return None
            change = found
        if change.before is change.after:
            return None
        check_circuit_move(change.before, change.after)
        log.warning("endpoint_circuit", endpoint=url, state=change.after, failures=change.failures,
                    cooldown=change.cooldown)  # fmt: skip
        return change
