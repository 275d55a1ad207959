"""The id of the request being served, kept in a context variable for logs and answers."""

from __future__ import annotations

import contextvars
import re
import uuid

__all__ = ["current_request_id", "new_request_id", "request_id_var"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id(offered: str | None = None) -> str:
    """Keep a well-formed id offered by a proxy (``X-Request-Id``), else make one."""
    if offered and _ACCEPTABLE.match(offered):
        return offered
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()
