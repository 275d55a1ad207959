"""The lifecycle of a company's receiving profile (the text values are what the database keeps).

A profile is ``pending`` until its participant is registered in the SML (at once for a verified
company, else when the company is verified); registration makes it ``active`` or ``failed``.
Any live profile can be ``removed``; a removed profile stays as history and never comes back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from gateway.directory.errors import IllegalMove

__all__ = ["PROFILE_MOVES", "ProfileStatus", "check_move"]


class ProfileStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REMOVED = "removed"
    FAILED = "failed"


PROFILE_MOVES: Mapping[ProfileStatus, frozenset[ProfileStatus]] = {
    ProfileStatus.PENDING: frozenset({ProfileStatus.ACTIVE, ProfileStatus.FAILED, ProfileStatus.REMOVED}),
    ProfileStatus.ACTIVE: frozenset({ProfileStatus.REMOVED}),
    ProfileStatus.FAILED: frozenset({ProfileStatus.REMOVED}),
    ProfileStatus.REMOVED: frozenset(),
}


def check_move(current: ProfileStatus, new: ProfileStatus) -> ProfileStatus:
    """``new`` when the lifecycle allows moving there from ``current``; else :class:`IllegalMove`."""
    if new not in PROFILE_MOVES[current]:
        raise IllegalMove(f"a {current} profile cannot become {new}")
    return new
