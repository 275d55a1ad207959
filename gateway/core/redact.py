"""Keep credentials out of everything printed: URL passwords and whole secret values.

Used by the settings' ``repr`` and by the log processors, so a DSN or a key cannot reach a log
line, an error message or a traceback text unmasked.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "mask_secret", "mask_url_credentials", "redact"]

MASK = "***"

# scheme://user:password@host -> scheme://user:***@host (also a password with no user)
_URL_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):(?P<password>[^@/?#\s]+)@")
# libpq keyword form: password=... in a DSN string
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'[^']*'|\S+)", re.IGNORECASE)


def mask_url_credentials(text: str) -> str:
    """``text`` with the password of every URL (and every ``password=`` keyword) masked; user,
    host and database stay visible, so a log still tells which server was meant."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def mask_secret(value: str | None) -> str | None:
    """A secret value as printed: nothing of it but whether it is set."""
    return None if value is None else MASK


def redact(value: Any) -> Any:
    """``value`` with URL credentials masked in every string, also inside lists, tuples and dicts;
    an exception becomes its masked ``repr`` (its message may quote a DSN)."""
    if isinstance(value, str):
        return mask_url_credentials(value)
    if isinstance(value, BaseException):
        return mask_url_credentials(repr(value))
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(redact(v) for v in value)
    return value
