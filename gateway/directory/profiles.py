"""Receiving profiles: which services a profile stands for, which participant id a company
receives as, and what registering a participant in the SML makes of its pending profiles.
Pure decisions; the I/O is in :mod:`gateway.directory.registration`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import smp
from gateway.directory.errors import BadParticipant, IllegalMove, UnknownProfile
from gateway.directory.participants import default_participant
from gateway.directory.queries import Company, Profile
from gateway.directory.states import ProfileStatus, check_move

__all__ = [
    "DEFAULT_VERSION",
    "by_participant",
    "document_types",
    "profile_services",
    "profile_view",
    "publish_now",
    "published_status",
    "receiving_participant",
    "sml_retry_delay",
]

DEFAULT_VERSION = "PEPPOLBIS30"


def profile_services(profiles: Iterable[str], version: str = DEFAULT_VERSION) -> list[tuple[str, str]]:
    """The (document type, process) pairs behind the profiles, in order; :class:`UnknownProfile`
    names the first unknown one."""
    services: list[tuple[str, str]] = []
    for name in profiles:
        try:
            documents = smp.profile_services(name, version)
        except KeyError:
            raise UnknownProfile(name, version) from None
        for doc in documents:
            services += [(str(doc.document_type), str(proc)) for proc in doc.processes]
    return services


def document_types(profile: str, version: str) -> list[str]:
    """The document types a profile receives (what removing it stops)."""
    return sorted({str(d.document_type) for d in smp.profile_services(profile, version)})


def receiving_participant(country: str, business_id: str, given: str | None) -> smp.ParticipantId:
    """The participant id a company receives as: as given, or its country's default scheme with
    the business id. :class:`BadParticipant` (or its :class:`NoDefaultScheme`) when neither gives
    a valid id."""
    try:
        return smp.ParticipantId.parse(given) if given else default_participant(country, business_id)
    except smp.IdentifierError as exc:
        raise BadParticipant(str(exc), "participant_id") from None


def publish_now(company: Company) -> bool:
    """Whether new profiles go to the SML at once: only a verified company's; the others wait
    until the company is verified."""
    return company.verified


def published_status(
    profile: Profile, sml_error: str | None, *, permanent: bool = False
) -> tuple[ProfileStatus, str | None]:
    """The status (and reason) of a pending profile once its participant's SML registration
    succeeded (no error) or failed: a refusal the SML may lift (or an SML that did not answer)
    keeps it ``pending`` with the SML's text, to be tried again; only a ``permanent`` one
    (decided before asking the SML) makes it ``failed``."""
    if sml_error is None:
        return check_move(profile.status, ProfileStatus.ACTIVE), None
    if permanent:
        return check_move(profile.status, ProfileStatus.FAILED), sml_error
    if profile.status is not ProfileStatus.PENDING:
        raise IllegalMove(f"a {profile.status} profile does not wait for the SML")
    return ProfileStatus.PENDING, sml_error


def sml_retry_delay(attempts: int, initial: float = 60.0, maximum: float = 6 * 3600.0) -> float:
    """Seconds before the next SML registration after ``attempts`` failed ones in a row:
    doubling from ``initial`` up to ``maximum``."""
    return float(min(maximum, initial * 2 ** max(0, min(attempts - 1, 30))))


def by_participant(profiles: Sequence[Profile]) -> dict[smp.ParticipantId, list[Profile]]:
    """Profiles grouped by the participant id they receive as (one SML registration each)."""
    groups: dict[tuple[str, str], list[Profile]] = {}
    for profile in profiles:
        groups.setdefault((profile.scheme, profile.value), []).append(profile)
    return {smp.ParticipantId.of(*key): rows for key, rows in groups.items()}


def profile_view(profile: Profile) -> dict[str, Any]:
    """The public shape of a profile: API answers and ``profile.status_changed`` events."""
    return {
        "id": str(profile.id),
        "network": profile.network,
        "profile": profile.profile,
        "profile_version": profile.version,
        "participant_id": f"{profile.scheme}::{profile.value}",
        "status": profile.status.value,
        "status_reason": profile.status_reason,
        "sml_attempts": profile.sml_attempts,
        "sml_retry_at": profile.sml_retry_at.isoformat() if profile.sml_retry_at else None,
        "created_at": profile.created_at.isoformat(),
        "updated_at": profile.updated_at.isoformat(),
    }
