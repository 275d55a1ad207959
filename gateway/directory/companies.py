"""Company settings the directory decides on: the document validation policies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.directory.errors import BadPolicy

__all__ = ["VALIDATION_POLICIES", "policy_changes"]

# Policy -> its allowed values: outbound documents are refused or only warned about; inbound
# ones are also not checked at all.
VALIDATION_POLICIES: Mapping[str, tuple[str, ...]] = {
    "outbound_validation": ("reject", "warn"),
    "inbound_validation": ("off", "reject", "warn"),
}


def policy_changes(changes: Mapping[str, Any]) -> dict[str, str]:
    """The asked policy changes, checked: :class:`BadPolicy` names an unknown policy (or one
    that cannot be changed this way) or value."""
    unknown = sorted(set(changes) - set(VALIDATION_POLICIES))
    if unknown:
        raise BadPolicy(f"{unknown[0]} cannot be changed here", unknown[0])
    for name, value in changes.items():
        if value not in VALIDATION_POLICIES[name]:
            raise BadPolicy(f"{name} is one of {', '.join(VALIDATION_POLICIES[name])}", name)
    return dict(changes)
