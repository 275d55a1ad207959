"""Company settings the directory decides on: the document validation policies and whether a
resubmitted document is refused (``duplicate_check``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.directory.errors import BadPolicy

__all__ = ["CHOICES", "SWITCHES", "VALIDATION_POLICIES", "policy_changes"]

# Policy -> its allowed values: outbound documents are refused or only warned about; inbound
# ones are also not checked at all.
VALIDATION_POLICIES: Mapping[str, tuple[str, ...]] = {
    "outbound_validation": ("reject", "warn"),
    "inbound_validation": ("off", "reject", "warn"),
}
# When a positive Message Level Status goes out for what the company receives: when the
# gateway accepted it, or when the company's ERP acknowledges it (an AB first if the deadline
# nears). The values are gateway.duties.mls_levels.POSITIVE_MLS.
CHOICES: Mapping[str, tuple[str, ...]] = {"positive_mls": ("on_processing", "on_acknowledge")}
# Settings that are on or off: duplicate_check off lets a company send a document again on
# purpose (the same ID and IssueDate to the same receiver within the duplicate window).
SWITCHES: tuple[str, ...] = ("duplicate_check",)


def policy_changes(changes: Mapping[str, Any]) -> dict[str, str | bool]:
    """The asked policy changes, checked: :class:`BadPolicy` names an unknown policy (or one
    that cannot be changed this way) or value."""
    unknown = sorted(set(changes) - set(VALIDATION_POLICIES) - set(SWITCHES) - set(CHOICES))
    if unknown:
        raise BadPolicy(f"{unknown[0]} cannot be changed here", unknown[0])
    for name, value in changes.items():
        if name in SWITCHES:
            if not isinstance(value, bool):
                raise BadPolicy(f"{name} is true or false", name)
        elif value not in {**VALIDATION_POLICIES, **CHOICES}[name]:
            allowed = {**VALIDATION_POLICIES, **CHOICES}[name]
            raise BadPolicy(f"{name} is one of {', '.join(allowed)}", name)
    return dict(changes)
