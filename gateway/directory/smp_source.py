"""Our SMP's data: the participants this gateway serves, read from PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

import smp
from gateway.directory import queries
from gateway.security.identity import ApIdentity

__all__ = ["DatabaseSmpSource"]


class DatabaseSmpSource:
    """Publishes every verified company's participants with this access point as endpoint."""

    def __init__(self, pool: asyncpg.Pool, as4_url: str, identity: ApIdentity, contact: str) -> None:
        self.pool = pool
        self.as4_url = as4_url
        self.identity = identity  # read per answer: a renewed certificate is published at once
        self.contact = contact

    async def document_types(self, participant: smp.ParticipantId) -> Sequence[smp.DocumentTypeId] | None:
        services = await queries.participant_services(self.pool, participant.scheme, participant.value)
        if services is None:
            return None
        seen: dict[str, smp.DocumentTypeId] = {}
        for document_type, _ in services:
            seen.setdefault(document_type, smp.DocumentTypeId.parse(document_type, registration=True))
        return list(seen.values())

    async def service_metadata(
        self, participant: smp.ParticipantId, document_type: smp.DocumentTypeId
    ) -> smp.ServiceMetadata | None:
        services = await queries.participant_services(self.pool, participant.scheme, participant.value)
        processes = [p for d, p in services or [] if d == str(document_type)]
        if not processes:
            return None
        endpoint = smp.Endpoint(
            url=self.as4_url,
            certificate=self.identity.cert,
            description="Peppol AS4 access point",
            technical_contact=self.contact,
        )
        return smp.ServiceMetadata(
            participant,
            document_type,
            tuple(smp.ProcessEntry(smp.ProcessId.parse(p), (endpoint,)) for p in processes),
        )
