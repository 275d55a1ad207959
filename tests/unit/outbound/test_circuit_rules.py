"""The circuit breaker's lifecycle and admission rule as pure functions (the moves themselves
run in PostgreSQL: tests/integration/outbound/test_circuits.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.outbound.circuits import Verdict, decide
from gateway.outbound.queries import CircuitView
from gateway.outbound.states import CIRCUIT_ALLOWED, CircuitState, IllegalMove, check_circuit_move

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else NOW + timedelta(seconds=seconds)


def view(state: CircuitState, *, opened: float | None = None, probe: float | None = None) -> CircuitView:
    """A circuit read at NOW, opened until / probed until ``NOW + seconds``."""
    return CircuitView(state, 5, 40.0, at(opened), at(probe), NOW)


def test_circuit_moves_follow_the_table() -> None:
    assert check_circuit_move("closed", "open") is CircuitState.OPEN
    assert check_circuit_move(CircuitState.OPEN, CircuitState.HALF_OPEN) is CircuitState.HALF_OPEN
    assert CircuitState.CLOSED in CIRCUIT_ALLOWED[CircuitState.HALF_OPEN]
    with pytest.raises(IllegalMove, match="circuit"):
        check_circuit_move(CircuitState.CLOSED, CircuitState.HALF_OPEN)  # only an open circuit is probed


def test_admission_rule() -> None:
    assert decide(None) == Verdict("go")
    assert decide(view(CircuitState.CLOSED)) == Verdict("go")
    assert decide(view(CircuitState.OPEN, opened=12)) == Verdict("wait", 12)
    assert decide(view(CircuitState.OPEN, opened=0)) == Verdict("probe")
    assert decide(view(CircuitState.HALF_OPEN, probe=30)) == Verdict("wait", 10)  # a quarter of the cooldown
    assert decide(view(CircuitState.HALF_OPEN, probe=-1)) == Verdict("probe")  # its prober died
    assert decide(view(CircuitState.HALF_OPEN)) == Verdict("probe")  # given back
