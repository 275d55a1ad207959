"""This tier runs against real servers: PostgreSQL and the SML's DNS server, shared for the run."""

from __future__ import annotations

from tests.support.browser import browser
from tests.support.services import db_dsn, db_pool, empty_db, knot, pg_dsn, template_db

__all__ = ["browser", "db_dsn", "db_pool", "empty_db", "knot", "pg_dsn", "template_db"]
