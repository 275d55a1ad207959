"""Our SMP: serve ServiceGroup and signed ServiceMetadata (SMP 1.x REST) for the participants
the gateway serves. The data comes from a :class:`SmpDataSource` the gateway provides, so this
module knows nothing about databases."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol
from urllib.parse import unquote

import structlog
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from smp._businesscard import BusinessCard, build_business_card
from smp._identifiers import DocumentTypeId, IdentifierError, ParticipantId
from smp._metadata import ServiceMetadata, build_service_group, build_signed_service_metadata

__all__ = ["BusinessCardSource", "SmpDataSource", "mount_smp", "smp_application"]

log = structlog.get_logger("smp.server")
XML_TYPE = "text/xml"
_PREFIX = web.AppKey("smp_prefix", str)


class SmpDataSource(Protocol):
    """What the SMP publishes. ``None`` means "not published here" (answered 404)."""

    async def document_types(self, participant: ParticipantId) -> Sequence[DocumentTypeId] | None: ...

    async def service_metadata(
        self, participant: ParticipantId, document_type: DocumentTypeId
    ) -> ServiceMetadata | None: ...


class BusinessCardSource(Protocol):
    """The Peppol Directory business cards the SMP serves; ``None``: no card published here."""

    async def business_card(self, participant: ParticipantId) -> BusinessCard | None: ...


def _not_found(message: str) -> web.Response:
    return web.Response(status=404, text=message + "\n", content_type="text/plain")


def smp_application(
    source: SmpDataSource,
    key: rsa.RSAPrivateKey | Callable[[], tuple[rsa.RSAPrivateKey, x509.Certificate]],
    cert: x509.Certificate | None = None,
    public_url: str | None = None,
    cards: BusinessCardSource | None = None,
) -> web.Application:
    """An aiohttp application answering ``GET /{participant}`` and
    ``GET /{participant}/services/{document type}`` (and, with ``cards``, the Peppol Directory's
    ``GET /businesscard/{participant}``); mount it where the SMP lives. The signing
    credentials are a key and certificate, or a function returning the current pair (so a
    renewed SMP certificate is used without a restart)."""
    if callable(key):
        credentials = key
    else:
        assert cert is not None, "a certificate goes with the key"
        fixed = (key, cert)

        def credentials() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
            return fixed

    async def handle(request: web.Request) -> web.StreamResponse:
        # Raw (still percent-encoded) segments after the mount prefix, decoded one by one.
        raw = request.raw_path.split("?", 1)[0]
        skip = len([s for s in request.app.get(_PREFIX, "").split("/") if s])
        segments = [s for s in raw.split("/") if s][skip:]
        try:
            if len(segments) == 2 and segments[0] == "businesscard" and cards is not None:
                participant = ParticipantId.parse(unquote(segments[1]))
                card = await cards.business_card(participant)
                if card is None:
                    return _not_found(f"no business card of {participant} is published here")
                return web.Response(body=build_business_card(card), content_type=XML_TYPE, charset="utf-8")
            if len(segments) == 1:
                participant = ParticipantId.parse(unquote(segments[0]))
                doctypes = await source.document_types(participant)
                if doctypes is None:
                    return _not_found(f"{participant} is not published here")
                base = public_url or f"{request.scheme}://{request.host}{request.app.get(_PREFIX, '')}"
                body = build_service_group(participant, doctypes, base)
                return web.Response(body=body, content_type=XML_TYPE, charset="utf-8")
            if len(segments) == 3 and segments[1] == "services":
                participant = ParticipantId.parse(unquote(segments[0]))
                document_type = DocumentTypeId.parse(unquote(segments[2]), registration=True)
                metadata = await source.service_metadata(participant, document_type)
                if metadata is None:
                    return _not_found(f"{participant} does not receive {document_type} here")
                body = build_signed_service_metadata(metadata, *credentials())
                return web.Response(body=body, content_type=XML_TYPE, charset="utf-8")
        except IdentifierError as exc:
            return web.Response(status=400, text=f"{exc}\n", content_type="text/plain")
        return _not_found("no such SMP resource")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def mount_smp(parent: web.Application, prefix: str, app: web.Application) -> None:
    """Mount the SMP under ``prefix`` (e.g. ``/smp``) of a parent application."""
    app[_PREFIX] = prefix.rstrip("/")
    parent.add_subapp(prefix, app)
