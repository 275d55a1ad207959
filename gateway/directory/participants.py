"""A company's Peppol participant id from its country and business id."""

from __future__ import annotations

import smp
from gateway.directory.errors import NoDefaultScheme

__all__ = ["DEFAULT_ICD", "default_participant"]

# Country -> the participant identifier scheme its companies are usually registered with.
DEFAULT_ICD = {"NO": "0192", "SE": "0007", "FI": "0216", "DK": "0184", "NL": "0106", "BE": "0208"}


def default_participant(country: str, business_id: str) -> smp.ParticipantId:
    """The country's scheme with the business id (Finland: OVT code 0037 + business id).

    Raises :class:`NoDefaultScheme` (a :class:`LookupError`) for a country without a default and
    :class:`smp.IdentifierError` when the business id breaks the scheme's rules."""
    icd = DEFAULT_ICD.get(country.upper())
    if icd is None:
        raise NoDefaultScheme(f"no default identifier scheme for country {country}; give the participant id")
    local = business_id
    if icd == "0216" and not business_id.startswith("0037"):
        local = "0037" + business_id.replace("-", "")
    return smp.ParticipantId.parse(f"{icd}:{local}")
