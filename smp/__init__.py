"""Peppol identifiers, SML/SMP discovery and SMP publishing.

Finding where to send::

    sml = SmlLookup("test")                      # or "production", or a local zone + nameserver
    client = SmpClient(sml, smp_trust=[smp_ca])
    route = await client.find_endpoint(ParticipantId.parse("0192:991825827"),
                                       DocumentTypeId.parse(...), ProcessId.parse(...))
    route.endpoint.url, route.endpoint.certificate

Being findable: :func:`smp_application` serves our SMP from a :class:`SmpDataSource` (and the
Peppol Directory business cards from a :class:`BusinessCardSource`), and
:class:`LocalSml` / :class:`SmlManagementClient` register participants in an SML; the
latter also manages our SMP's own SML record, participant migrations and certificate changes.

Every failure is a :class:`DiscoveryError` subclass; ``retryable`` says whether to try later.
Nothing here imports the gateway or the AS4 layer.
"""

from smp._businesscard import (
    BUSINESS_CARD_NS,
    BusinessCard,
    BusinessEntity,
    Contact,
    EntityIdentifier,
    EntityName,
    build_business_card,
    parse_business_card,
)
from smp._catalog import (
    DOCUMENT_TYPES,
    EUSR,
    MLS,
    PROFILES,
    TSR,
    DocumentType,
    find_document_type,
    profile_services,
)
from smp._client import (
    DocumentTypeNotSupported,
    EndpointNotActive,
    ParticipantUnknown,
    Route,
    ServiceGroupInfo,
    SmpClient,
    SmpUnavailable,
    VerifiedService,
    match_registration,
)
from smp._errors import DiscoveryError
from smp._identifiers import (
    PARTICIPANT_SCHEME,
    PROCESS_SCHEME,
    DocumentTypeId,
    IdentifierError,
    ParticipantId,
    ProcessId,
)
from smp._management import (
    ParticipantPage,
    SmlFault,
    SmlManagementClient,
    SmpRecord,
    check_migration_key,
    client_tls_context,
    logical_address,
    new_migration_key,
)
from smp._metadata import (
    AS4_TRANSPORT,
    Endpoint,
    MetadataError,
    ProcessEntry,
    Redirect,
    ServiceMetadata,
    SignatureInvalid,
    UntrustedSmpCertificate,
    build_service_group,
    build_signed_redirect,
    build_signed_service_metadata,
    check_smp_certificate,
    parse_service_group,
    verify_signed_service_metadata,
)
from smp._registration import (
    LocalSml,
    RegistrationError,
    SmlRegistrar,
    naptr_text,
)
from smp._schemes import ICD_SCHEMES
from smp._server import BusinessCardSource, SmpDataSource, mount_smp, smp_application
from smp._sml import (
    SML_MANAGEMENT_URLS,
    SML_ZONES,
    DnsFailure,
    InsecureEndpoint,
    MalformedRecord,
    NotRegistered,
    SmlError,
    SmlLookup,
    check_endpoint_url,
    dns_name,
    is_peppol_zone,
    management_url,
    resolve_zone,
)

__all__ = [
    "AS4_TRANSPORT",
    "BUSINESS_CARD_NS",
    "DOCUMENT_TYPES",
    "EUSR",
    "ICD_SCHEMES",
    "MLS",
    "PARTICIPANT_SCHEME",
    "PROCESS_SCHEME",
    "PROFILES",
    "SML_MANAGEMENT_URLS",
    "SML_ZONES",
    "TSR",
    "BusinessCard",
    "BusinessCardSource",
    "BusinessEntity",
    "Contact",
    "DiscoveryError",
    "DnsFailure",
    "DocumentType",
    "DocumentTypeId",
    "DocumentTypeNotSupported",
    "Endpoint",
    "EndpointNotActive",
    "EntityIdentifier",
    "EntityName",
    "IdentifierError",
    "InsecureEndpoint",
    "LocalSml",
    "MalformedRecord",
    "MetadataError",
    "NotRegistered",
    "ParticipantId",
    "ParticipantPage",
    "ParticipantUnknown",
    "ProcessEntry",
    "ProcessId",
    "Redirect",
    "RegistrationError",
    "Route",
    "ServiceGroupInfo",
    "ServiceMetadata",
    "SignatureInvalid",
    "SmlError",
    "SmlFault",
    "SmlLookup",
    "SmlManagementClient",
    "SmlRegistrar",
    "SmpClient",
    "SmpDataSource",
    "SmpRecord",
    "SmpUnavailable",
    "UntrustedSmpCertificate",
    "VerifiedService",
    "build_business_card",
    "build_service_group",
    "build_signed_redirect",
    "build_signed_service_metadata",
    "check_endpoint_url",
    "check_migration_key",
    "check_smp_certificate",
    "client_tls_context",
    "dns_name",
    "find_document_type",
    "is_peppol_zone",
    "logical_address",
    "management_url",
    "match_registration",
    "mount_smp",
    "naptr_text",
    "new_migration_key",
    "parse_business_card",
    "parse_service_group",
    "profile_services",
    "resolve_zone",
    "smp_application",
    "verify_signed_service_metadata",
]
