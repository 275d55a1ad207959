"""Every command joins the command line one way (a module's ``register``), and every command the
parser accepts has a handler to run."""

from __future__ import annotations

import argparse

import pytest

from gateway.cli.main import REGISTER, build_parser
from gateway.cli.registry import ExitCode


def _leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _leaf_commands(sub, (*prefix, name))
    return found or [prefix]


def test_every_command_and_action_has_a_handler() -> None:
    parser, _ = build_parser()
    leaves = _leaf_commands(parser)
    assert ("company", "add") in leaves and ("as4", "inspect") in leaves and ("serve",) in leaves
    for leaf in leaves:
        sub: argparse.ArgumentParser = parser
        for name in leaf:
            sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert callable(sub.get_default("run")), leaf


def test_every_command_module_registers_through_one_function() -> None:
    assert all(callable(register) for register in REGISTER)
    assert len({register.__module__ for register in REGISTER}) == len(REGISTER)


@pytest.mark.parametrize(("code", "value"), [("OK", 0), ("FAILED", 1), ("USAGE", 2), ("NOT_DONE", 3)])
def test_exit_statuses_are_stable(code: str, value: int) -> None:
    assert ExitCode[code] == value
