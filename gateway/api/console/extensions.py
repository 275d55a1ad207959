"""Where the console grows: its navigation and the panels of a document's page.

A feature adds a page with a route (in its own module of this package, registered in
:func:`gateway.api.console.add_console_routes`) and an entry in :data:`NAV`; it adds what it
knows about one document (its content read as HTML or JSON, its service level, ...) as a
:class:`DocumentPanel` in :data:`DOCUMENT_PANELS`, shown on the document's page under the
audit trail. A panel is a function of the signed-in user and the traced document that returns
its title and rows, or None when it has nothing to say about that document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from gateway.api.console.session import ConsoleUser

__all__ = ["DOCUMENT_PANELS", "NAV", "DocumentPanel", "NavItem", "Panel"]


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    operators_only: bool = False

    def visible(self, user: ConsoleUser) -> bool:
        return user.is_operator or not self.operators_only


NAV: list[NavItem] = [
    NavItem("Messages", "/console/documents"),
    NavItem("Companies", "/console/companies"),
    NavItem("Network health", "/console/health", operators_only=True),
    NavItem("Duties", "/console/duties"),
]


@dataclass(frozen=True)
class Panel:
    """A section of a document's page: a title and rows of (label, value, link or None)."""

    title: str
    rows: list[tuple[str, str, str | None]] = field(default_factory=list)


# (request, user, document id such as "s12" or "r3", the traced row) -> a panel or None
DocumentPanel = Callable[[web.Request, "ConsoleUser", str, Any], Awaitable[Panel | None]]

DOCUMENT_PANELS: list[DocumentPanel] = []
