"""The one loop every background task runs in, and the one place that starts and stops them.

A background task is a *step*: a coroutine function that does one unit of work and says whether
it found any. ``run_loop`` calls it again at once while it finds work, otherwise waits for its
interval or a wake-up, and survives every failure of a single step (a database restart, a
partner's bad answer, a bug in one document): the failure is logged with the task's name and the
next step is tried after the interval. Only cancellation ends a step early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import structlog

from gateway.core.database import database_unavailable

__all__ = ["Lifecycle", "Step", "Wakeup", "run_loop"]

log = structlog.get_logger("gateway.core.lifecycle")

Step = Callable[[], Awaitable[bool]]

# Errors a step meets when the database or the network goes away for a while: logged as a
# warning, the loop goes on. Anything else is logged as an error, and the loop still goes on.
_EXPECTED = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    TimeoutError,
)


class Wakeup:
    """A bounded wake-up signal shared by the loops of one task.

    ``set()`` adds one permit (at most ``limit``); a waiting loop takes one. With ``limit=1`` it
    behaves like an event that resets itself; with ``limit=n`` it wakes up to ``n`` loops of the
    same task, one per notification, without piling up permits that would be empty claims.
    """

    def __init__(self, limit: int = 1) -> None:
        self.limit = max(1, limit)
        self._permits = asyncio.Semaphore(0)
        self._count = 0

    def set(self) -> None:
        if self._count < self.limit:
            self._count += 1
            self._permits.release()

    async def wait(self) -> None:
        await self._permits.acquire()
        self._count -= 1


async def _pause(stop: asyncio.Event, interval: float, wake: Wakeup | None) -> None:
    waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(stop.wait())}
    if wake is not None:
        waiters.add(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            if not waiter.done():
                waiter.cancel()
        # A permit taken by a waiter that finished alongside the stop is not lost work: the next
        # step runs at once anyway.


async def run_loop(
    name: str,
    step: Step,
    stop: asyncio.Event,
    *,
    interval: float,
    wake: Wakeup | None = None,
) -> None:
    """Run ``step`` until ``stop`` is set: again at once after work, else after ``interval``
    seconds or a wake-up. A failing step is logged and retried after the interval."""
    while not stop.is_set():
        try:
            worked = await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not (database_unavailable(exc) or isinstance(exc, _EXPECTED)):
                log.error(
                    "background_step_crashed", task=name, error=type(exc).__name__, reason=str(exc)[:300]
                )  # one bad step must not end the task
            else:
                log.warning("background_step_failed", task=name, error=type(exc).__name__)
            worked = False
        if worked:
            await asyncio.sleep(0)  # let the rest of the process breathe between steps
            continue
        await _pause(stop, interval, wake)


@dataclass
class Lifecycle:
    """Starts background tasks and stops them: ``stop()`` signals every loop, waits up to
    ``grace`` seconds for them to end their current step, then cancels what is left (a cancelled
    delivery gives its job back to the queue itself)."""

    grace: float
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: dict[asyncio.Task[None], str] = field(default_factory=dict)

    def start(self, name: str, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a task that dies is logged; the others go on
                log.error("background_task_failed", task=name, error=type(exc).__name__, reason=str(exc)[:300])

        self._tasks[asyncio.create_task(guarded(), name=name)] = name

    def loop(self, name: str, step: Step, *, interval: float, wake: Wakeup | None = None, copies: int = 1) -> None:
        """Start ``copies`` loops of one step (copies > 1 work the same queue concurrently)."""
        for _ in range(copies):
            self.start(name, run_loop(name, step, self.stop_event, interval=interval, wake=wake))

    @property
    def names(self) -> list[str]:
        return sorted(set(self._tasks.values()))

    async def stop(self, grace: float | None = None) -> int:
        """Stop every task; returns how many had to be cancelled."""
        self.stop_event.set()
        tasks = list(self._tasks)
        self._tasks.clear()
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=self.grace if grace is None else grace)
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(Exception):
                await asyncio.wait(pending, timeout=5)
        return len(pending)
