"""Searching the Peppol Directory (its search API, ``/search/1.0/json``) for ERP users who know
a company's name but not its participant id.

The answer is read defensively: a match is the participant, the document types it lists and its
business entities (names, country, geographical information, identifiers, websites, contacts,
registration date), in the API's words (those of ``GET /v1/company/business_card``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.directory.errors import DirectoryError

__all__ = ["MAX_RESULTS", "SearchResult", "SearchUnavailable", "parse_search_answer", "search_directory"]

MAX_RESULTS = 100
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class SearchUnavailable(DirectoryError):
    """The Directory's search API could not be reached or gave no usable answer."""


@dataclass(frozen=True)
class SearchResult:
    total: int
    matches: tuple[dict[str, Any], ...]


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _identifier(value: Any) -> str | None:
    if isinstance(value, Mapping) and _str(value.get("value")):
        scheme = _str(value.get("scheme"))
        return f"{scheme}::{value['value'].strip()}" if scheme else value["value"].strip()
    return None


def _entity(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    names = [
        {"name": _str(n.get("name")), "language": _str(n.get("language"))}
        for n in _list(raw.get("name"))
        if isinstance(n, Mapping) and _str(n.get("name"))
    ]
    return {
        "name": names[0]["name"] if names else None,
        "names": names,
        "country": _str(raw.get("countryCode")),
        "geographical_information": _str(raw.get("geoInfo")),
        "identifiers": [
            {"scheme": _str(i.get("scheme")), "value": _str(i.get("value"))}
            for i in _list(raw.get("identifiers"))
            if isinstance(i, Mapping)
        ],
        "websites": [w for w in _list(raw.get("websites")) if isinstance(w, str)],
        "contacts": [
            {key: _str(c.get(key)) for key in ("type", "name", "phone", "email")}
            for c in _list(raw.get("contacts"))
            if isinstance(c, Mapping)
        ],
        "additional_information": _str(raw.get("additionalInfo")),
        "registration_date": _str(raw.get("regDate")),
    }


def parse_search_answer(answer: Any) -> SearchResult:
    """The Directory's JSON answer in our words; :class:`SearchUnavailable` if it is not one."""
    if not isinstance(answer, Mapping):
        raise SearchUnavailable("the Directory's answer is not a JSON object")
    matches = []
    for raw in _list(answer.get("matches"))[:MAX_RESULTS]:
        if not isinstance(raw, Mapping):
            continue
        participant = _identifier(raw.get("participantID"))
        if participant is None:
            continue
        matches.append(
            {
                "participant": participant,
                "document_types": [d for d in (_identifier(x) for x in _list(raw.get("docTypes"))) if d],
                "entities": [e for e in (_entity(x) for x in _list(raw.get("entities"))) if e],
            }
        )
    total = answer.get("total-result-count")
    return SearchResult(total if isinstance(total, int) and total >= 0 else len(matches), tuple(matches))


async def search_directory(
    url: str, *, query: str | None, country: str | None, limit: int = 20, timeout: float = 10.0
) -> SearchResult:
    """Ask the search API at ``url``; :class:`SearchUnavailable` when it does not answer."""
    params = {"rpc": str(limit)}
    if query:
        params["q"] = query
    if country:
        params["country"] = country
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, params=params, headers={"Accept": "application/json"}, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise SearchUnavailable(f"the Directory answered HTTP {response.status}")
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SearchUnavailable(f"the Directory is unreachable: {type(exc).__name__}: {exc}") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise SearchUnavailable("the Directory's answer is too large")
    if not body.strip():
        return SearchResult(0, ())  # the Directory answers an empty body for no match
    try:
        return parse_search_answer(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        raise SearchUnavailable("the Directory's answer is not JSON") from None
