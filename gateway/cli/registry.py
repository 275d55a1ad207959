"""How a command joins the ``peppol-gateway`` command line, and what its exit status means.

Each command module has one ``register(commands)`` function that adds its commands with
``commands.add`` (or a group of actions with ``commands.group``); ``main`` calls them in turn and
runs the handler of the command given. Exit statuses are the same for every command:

    0    done: valid, delivered, nothing wrong found
    1    the check failed or the work failed (invalid document, delivery failed, problems found)
    2    bad input or usage (arguments, configuration, an unreadable file)
    3    not done yet: queued for a retry, or a check that could not run
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from gateway.core.config import Settings

__all__ = ["Commands", "ExitCode", "Handler"]

Handler = Callable[[argparse.Namespace, Settings], int]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_DONE = 3
    INTERRUPTED = 130


class Commands:
    """The subcommands of one parser (the top level, or a command group)."""

    def __init__(self, subparsers: Any, group: str = "command") -> None:
        self._sub = subparsers
        self._group = group

    def add(self, name: str, run: Handler, *, help: str, description: str) -> argparse.ArgumentParser:
        """A command (or a group's action) whose arguments the caller adds to the parser returned."""
        parser: argparse.ArgumentParser = self._sub.add_parser(name, help=help, description=description)
        parser.set_defaults(run=run)
        return parser

    def group(self, name: str, *, help: str, description: str) -> Commands:
        """A command made of actions (``company add``, ``as4 inspect``): add them to the result."""
        parser = self._sub.add_parser(name, help=help, description=description)
        dest = f"{name.replace('-', '_')}_command"
        return Commands(parser.add_subparsers(dest=dest, metavar="ACTION", required=True), dest)
