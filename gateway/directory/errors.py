"""The directory domain's failures, all under one root so callers can catch the domain at once.

::

    DirectoryError
    ├── IllegalMove              a profile status change its lifecycle does not allow
    ├── NotFound                 no such company or profile (for this caller)
    ├── Conflict                 the change collides with what is registered
    │   ├── CompanyExists        a company with this business id in this country exists
    │   ├── ParticipantTaken     the participant id belongs to another company
    │   └── ProfileRegistered    the profile and version are already registered
    ├── SmlUnavailable           the SML's management interface is not set up (a local zone)
    ├── SmlRefused               the SML refused or did not answer; ``fault`` is its own text
    └── Invalid                  a request the directory refuses; ``field`` names the culprit
        ├── UnknownProfile       no such receiving profile (and version)
        ├── BadParticipant       a participant id that cannot be used
        │   └── NoDefaultScheme  no default scheme for the country (also LookupError)
        ├── BadPolicy            a validation policy that does not exist
        └── BadBusinessCard      a business card field the Peppol Directory would not take
"""

from __future__ import annotations

from gateway.core.errors import GatewayError

__all__ = [
    "BadBusinessCard",
    "BadParticipant",
    "BadPolicy",
    "CompanyExists",
    "Conflict",
    "DirectoryError",
    "IllegalMove",
    "Invalid",
    "NoDefaultScheme",
    "NotFound",
    "ParticipantTaken",
    "ProfileRegistered",
    "SmlRefused",
    "SmlUnavailable",
    "UnknownProfile",
]


class DirectoryError(GatewayError):
    """The root of every failure of the directory domain."""


class IllegalMove(DirectoryError):
    """A status change the lifecycle's transition table does not allow (a bug, not user input)."""


class NotFound(DirectoryError):
    """No such company or profile, or not one the caller may see."""


class Conflict(DirectoryError):
    """The change collides with what is already registered."""


class CompanyExists(Conflict):
    """A company with this business id in this country is registered."""


class ParticipantTaken(Conflict):
    """The participant id is registered for another company."""


class ProfileRegistered(Conflict):
    """The company already registered this profile and version."""


class SmlUnavailable(DirectoryError):
    """No SML management interface: the zone is local, or smp.id / sml.management_url is missing."""


class SmlRefused(DirectoryError):
    """The SML refused a management call (``fault``: its text) or could not be reached."""

    def __init__(self, message: str, fault: str) -> None:
        super().__init__(message)
        self.fault = fault


class Invalid(DirectoryError):
    """Input the directory refuses; ``field`` names the offending field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownProfile(Invalid):
    """No receiving profile of this name and version is known."""

    def __init__(self, profile: str, version: str) -> None:
        super().__init__(f"unknown profile {profile} ({version})", "profiles")
        self.profile = profile
        self.version = version


class BadParticipant(Invalid):
    """A participant id that is malformed or cannot be derived."""


class NoDefaultScheme(BadParticipant, LookupError):
    """The country has no default identifier scheme: the participant id must be given."""

    def __init__(self, message: str, field: str = "participant_id") -> None:
        super().__init__(message, field)


class BadPolicy(Invalid):
    """A validation policy name or value that does not exist."""


class BadBusinessCard(Invalid):
    """A business card field that is missing, malformed or too long."""
