"""Protecting partners and ourselves: a circuit breaker and a concurrency limit per receiving
access point endpoint.

After ``threshold`` transport failures in a row an endpoint's circuit opens: nothing is sent
there for ``cooldown`` seconds (doubling while probes keep failing, up to ``max_cooldown``), then
one probe delivery is let through; its success closes the circuit. Documents waiting for an
open circuit are put back in the queue for when it may close, without counting an attempt. The
limit on concurrent deliveries per endpoint keeps one slow partner from holding every worker:
a delivery waits briefly for a free slot, then gives its job back to the queue.

The state lives in this process (the decisions need no database round trip); each change is
also written to ``endpoint_circuits`` so operators see it through the API and metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Circuit", "EndpointGuard"]


@dataclass
class Circuit:
    state: str = "closed"  # closed, open, half_open
    failures: int = 0
    opened_until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False


class EndpointGuard:
    """Decides, per endpoint URL, whether a delivery may start now."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        max_cooldown: float = 900.0,
        max_concurrent: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.max_concurrent = max_concurrent
        self.clock = clock
        self.circuits: dict[str, Circuit] = defaultdict(Circuit)
        self.slots: dict[str, asyncio.Semaphore] = {}

    async def admit(self, url: str, wait: float = 2.0) -> float:
        """0 when a delivery to ``url`` may start now (it then holds one of the endpoint's slots
        until :meth:`finished`); otherwise the seconds to wait before trying again. A delivery
        waits up to ``wait`` seconds for a free slot before giving its job back."""
        circuit = self.circuits[url]
        now = self.clock()
        if circuit.state == "open":
            if now < circuit.opened_until:
                return circuit.opened_until - now
            circuit.state = "half_open"
        if circuit.state == "half_open":
            if circuit.probing:
                return max(1.0, circuit.cooldown / 4)
            circuit.probing = True
        slots = self.slots.get(url)
        if slots is None:
            slots = self.slots[url] = asyncio.Semaphore(self.max_concurrent)
        try:
            await asyncio.wait_for(slots.acquire(), wait)
        except TimeoutError:
            if circuit.state == "half_open":
                circuit.probing = False
            return 0.5
        return 0.0

    def finished(self, url: str, *, transport_failure: bool) -> str | None:
        """Record how a started delivery ended; returns the new state when it changed."""
        slots = self.slots.get(url)
        if slots is not None:
            slots.release()
        circuit = self.circuits[url]
        before = circuit.state
        if not transport_failure:
            circuit.failures = 0
            circuit.state = "closed"
            circuit.cooldown = 0.0
            circuit.probing = False
        else:
            circuit.failures += 1
            if circuit.state == "half_open" or circuit.failures >= self.threshold:
                circuit.cooldown = min(self.max_cooldown, max(self.base_cooldown, circuit.cooldown * 2))
                circuit.state = "open"
                circuit.opened_until = self.clock() + circuit.cooldown
                circuit.probing = False
        return circuit.state if circuit.state != before else None
