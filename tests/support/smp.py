"""An SMP's data in memory (a stand-in for the gateway's PostgreSQL source) and signed
service metadata to publish in it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.dev.pki import DevPki
from smp import (
    DocumentTypeId,
    Endpoint,
    ParticipantId,
    ProcessEntry,
    ServiceMetadata,
    profile_services,
)

INVOICE = profile_services("INVOICE_AND_CREDIT_NOTE")[0]


@dataclass
class MemorySource:
    """The gateway backs this with PostgreSQL; here it is a dict."""

    services: dict[ParticipantId, dict[DocumentTypeId, ServiceMetadata]] = field(default_factory=dict)

    async def document_types(self, participant: ParticipantId) -> Sequence[DocumentTypeId] | None:
        entries = self.services.get(participant)
        return None if entries is None else list(entries)

    async def service_metadata(
        self, participant: ParticipantId, document_type: DocumentTypeId
    ) -> ServiceMetadata | None:
        return self.services.get(participant, {}).get(document_type)


def metadata(
    pki: DevPki,
    participant: ParticipantId,
    doc=INVOICE,
    url="https://ap.example/as4",
    **endpoint_kw,
) -> ServiceMetadata:  # type: ignore[no-untyped-def]
    endpoint = Endpoint(
        url=url, certificate=pki.access_points["ap1"].cert, description="AS4",
        technical_contact="mailto:ops@example.test", **endpoint_kw,
    )  # fmt: skip
    return ServiceMetadata(participant, doc.document_type, (ProcessEntry(doc.process, (endpoint,)),))
