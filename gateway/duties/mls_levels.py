"""Message Level Status service levels and rules, as plain decisions (Peppol Network Policy,
MLS mandatory from 2026-07-02).

Two service levels are measured per month and per partner (the other access point's seat id):

* **MLS-1**, our side as C3: 99.5 % of the MLS we owe are sent (their receipt received) within
  20 minutes of the receipt of the business document. An MLS is owed for a received business
  document (never an MLS or an MLR) when its envelope asks ``ALWAYS_SEND``, or when it was
  rejected (also under ``FAILURE_ONLY``, the default when ``MLS_TYPE`` is absent). An accepted
  document under ``FAILURE_ONLY`` needs none and is not counted.
* **MLS-2**, our side as C2: 99.5 % of the MLS we are owed arrive within 25 minutes of our
  sending (the receipt of the document). An MLS is owed for a delivered document we asked
  ``ALWAYS_SEND`` for; under ``FAILURE_ONLY`` only a negative MLS comes, so only one that arrived
  is counted.

A document whose MLS is still missing counts against the share once its limit has passed
(``overdue``); before that it is ``waiting`` and not measured yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = [
    "ALWAYS_SEND",
    "DEFAULT_MLS_TYPE",
    "FAILURE_ONLY",
    "LEVELS",
    "MLS_1",
    "MLS_2",
    "NO_MLS_KINDS",
    "ON_ACKNOWLEDGE",
    "ON_PROCESSING",
    "POSITIVE_MLS",
    "Level",
    "LevelFigures",
    "mls_owed",
    "positive_code",
    "warn_from",
]

FAILURE_ONLY = "FAILURE_ONLY"
ALWAYS_SEND = "ALWAYS_SEND"
DEFAULT_MLS_TYPE = FAILURE_ONLY  # Peppol Network Policy: MLS_TYPE absent means FAILURE_ONLY
NO_MLS_KINDS = ("mls", "mlr")  # never answered with an MLS
# When a positive MLS goes out: when the processor accepted the document, or when the ERP
# acknowledged it through the API (an AB goes out instead when the deadline nears first).
ON_PROCESSING = "on_processing"
ON_ACKNOWLEDGE = "on_acknowledge"
POSITIVE_MLS = (ON_PROCESSING, ON_ACKNOWLEDGE)


@dataclass(frozen=True)
class Level:
    """One service level: the time allowed and the share that must make it."""

    name: str  # "MLS-1"
    role: str  # "sending" (we owe the MLS, as C3) or "receiving" (we are owed it, as C2)
    limit: timedelta
    target: float = 0.995


MLS_1 = Level("MLS-1", "sending", timedelta(minutes=20))
MLS_2 = Level("MLS-2", "receiving", timedelta(minutes=25))
LEVELS = (MLS_1, MLS_2)


def mls_owed(kind: str, mls_type: str | None, accepted: bool) -> bool:
    """Whether C3 owes an MLS for a received document of ``kind``."""
    if kind in NO_MLS_KINDS:
        return False
    return not accepted or (mls_type or DEFAULT_MLS_TYPE) == ALWAYS_SEND


def positive_code(validated: bool, *, acknowledged: bool = False) -> str:
    """``AP`` when the receiver confirmed the document (validated by its policy, or acknowledged
    by its ERP), ``AB`` when it was only stored for it."""
    return "AP" if validated or acknowledged else "AB"


def warn_from(level: Level, margin: timedelta) -> timedelta:
    """How old a document without its MLS is when operators are warned: ``margin`` before the
    limit (never before the start)."""
    return max(level.limit - margin, timedelta(0))


@dataclass(frozen=True)
class LevelFigures:
    """One partner's (or, with ``partner`` None, everyone's) figures for a level and month."""

    partner: str | None
    count: int  # documents that owe (or are owed) an MLS
    with_mls: int
    within_limit: int
    waiting: int  # no MLS yet, the limit not passed
    overdue: int  # no MLS, the limit passed
    p50_seconds: float | None
    p99_seconds: float | None

    @property
    def measured(self) -> int:
        """Documents whose outcome is known: an MLS came, or its time ran out."""
        return self.with_mls + self.overdue

    @property
    def share_within_limit(self) -> float | None:
        return self.within_limit / self.measured if self.measured else None

    def meets(self, level: Level) -> bool | None:
        share = self.share_within_limit
        return None if share is None else share >= level.target

    def as_json(self, level: Level) -> dict[str, object]:
        share = self.share_within_limit
        return {
            "partner": self.partner,
            "count": self.count,
            "with_mls": self.with_mls,
            "within_limit": self.within_limit,
            "share_within_limit": None if share is None else round(share, 6),
            "p50_seconds": None if self.p50_seconds is None else round(self.p50_seconds, 3),
            "p99_seconds": None if self.p99_seconds is None else round(self.p99_seconds, 3),
            "waiting": self.waiting,
            "overdue": self.overdue,
            "meets_target": self.meets(level),
        }
