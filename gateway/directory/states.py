"""The lifecycle of a company's receiving profile (the text values are what the database keeps).

A profile is ``pending`` until its participant is registered in the SML (at once for a verified
company, else when the company is verified); registration makes it ``active`` or ``failed``.
Any live profile can be ``removed``; a removed profile stays as history and never comes back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from gateway.directory.errors import IllegalMove

__all__ = [
    "NOTIFICATION_MOVES",
    "PROFILE_MOVES",
    "IndexerAction",
    "NotificationState",
    "ProfileStatus",
    "check_move",
    "check_notification_move",
]


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


class IndexerAction(enum.StrEnum):
    """What the Peppol Directory's indexer is told about a participant."""

    INDEX = "index"  # (re)read the business card from our SMP
    REMOVE = "remove"  # forget the participant


class NotificationState(enum.StrEnum):
    """A notification of the Directory's indexer: ``pending`` until the indexer accepted it
    (``sent``) or ``directory.give_up_after`` passed (``failed``). A new change of the card, or an
    operator's retry, makes any notification ``pending`` again."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


NOTIFICATION_MOVES: Mapping[NotificationState, frozenset[NotificationState]] = {
    NotificationState.PENDING: frozenset({NotificationState.PENDING, NotificationState.SENT, NotificationState.FAILED}),
    NotificationState.SENT: frozenset({NotificationState.PENDING}),
    NotificationState.FAILED: frozenset({NotificationState.PENDING}),
}


def check_notification_move(current: NotificationState, new: NotificationState) -> NotificationState:
    """``new`` when a notification may move there from ``current``; else :class:`IllegalMove`."""
    if new not in NOTIFICATION_MOVES[current]:
        raise IllegalMove(f"a {current} notification cannot become {new}")
    return new
