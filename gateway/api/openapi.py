"""The OpenAPI 3.1 description of the REST API, served at ``GET /v1/openapi.json``.

Written next to the handlers and checked against them: a test compares its paths with the
routes the app registers, and schemathesis exercises the live app with it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.documents import DocumentStatus
from gateway.core.version import __version__
from gateway.directory.states import IndexerAction, NotificationState, ProfileStatus
from gateway.duties.states import ReportState
from gateway.security.credentials import KeyStatus
from gateway.webhooks.states import DeliveryState

__all__ = ["openapi_document", "serve_openapi"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], status: str = "200", description: str = "OK") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["success", "data", "meta"],
                        "properties": {"success": {"const": True}, "data": schema, "meta": _ref("Meta")},
                    }
                }
            },
        },
        "4XX": {"description": "Error", "content": {"application/json": {"schema": _ref("Error")}}},
    }


def _ok_page(schema: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`_ok`, with the next page's cursor in ``meta`` (null on the last page)."""
    responses = _ok(schema)
    body = responses["200"]["content"]["application/json"]["schema"]
    body["properties"]["meta"] = {
        "allOf": [_ref("Meta")],
        "type": "object",
        "required": ["next_cursor"],
        "properties": {"next_cursor": {"type": ["string", "null"]}},
    }
    return responses


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retry safely: the caller's key (per company, or per operator) for 24 hours. A retry gets "
    "the first answer again (status and body, with `Idempotent-Replayed: true`; a secret shown once is null); "
    "the key with another request is refused (409 `idempotency_key_reused`).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


def _once(op: dict[str, Any]) -> dict[str, Any]:
    """An operation that creates something, answered once per Idempotency-Key."""
    op["parameters"] = [*op.get("parameters", []), _IDEMPOTENCY_KEY]
    for status, response in op["responses"].items():
        if status.startswith("2"):
            response["headers"] = {
                "Idempotent-Replayed": {
                    "description": "`true` when this is the kept answer to an earlier request with the key",
                    "schema": {"const": "true"},
                }
            }
    return op


_STAMP = {"type": ["string", "null"], "format": "date-time"}
_XML = {"description": "XML", "content": {"application/xml": {"schema": {"type": "string"}}}}
_ERROR_ONLY = {"4XX": {"description": "Error", "content": {"application/json": {"schema": _ref("Error")}}}}


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Meta": {
            "type": "object",
            "properties": {"timestamp": {"type": "string"}, "request_id": {"type": ["string", "null"]}},
        },
        "Error": {
            "type": "object",
            "required": ["success", "error", "meta"],
            "properties": {
                "success": {"const": False},
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {
                            "type": "string",
                            "examples": [
                                "authentication_required",
                                "invalid_token",
                                "insufficient_scope",
                                "not_found",
                                "validation_error",
                                "conflict",
                                "idempotency_key_reused",
                                "duplicate_document",
                                "already_answered",
                                "payload_too_large",
                                "rate_limit_exceeded",
                                "company_not_verified",
                                "internal_error",
                                "database_unavailable",
                            ],
                        },
                        "message": {"type": "string"},
                        "details": {},
                    },
                },
                "meta": _ref("Meta"),
            },
        },
        "Company": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": {"type": "string"},
                "country": {"type": "string"},
                "business_id": {"type": "string"},
                "verified": {"type": "boolean"},
                "outbound_validation": {"enum": ["reject", "warn"]},
                "inbound_validation": {"enum": ["off", "reject", "warn"]},
                "duplicate_check": {
                    "type": "boolean",
                    "description": "a business document sent again (same sender, receiver, type, ID and IssueDate) "
                    "within the duplicate window is refused with 409 duplicate_document",
                },
                "positive_mls": {"enum": ["on_processing", "on_acknowledge"]},
                "created_at": {"type": "string"},
                "api_key": {
                    "type": ["string", "null"],
                    "description": "only when created; shown once (null in a replayed answer)",
                },
            },
        },
        "ApiKey": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "label": {"type": "string"},
                "prefix": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "created_at": _STAMP,
                "expires_at": _STAMP,
                "revoked_at": _STAMP,
                "last_used_at": _STAMP,
                "last_used_ip": {"type": ["string", "null"]},
                "status": {"enum": [s.value for s in KeyStatus]},
                "api_key": {
                    "type": ["string", "null"],
                    "description": "only when created or rotated; shown once (null in a replayed answer)",
                },
            },
        },
        "Profile": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "network": {"type": "string"},
                "profile": {"type": "string"},
                "profile_version": {"type": "string"},
                "participant_id": {"type": "string"},
                "status": {"enum": [s.value for s in ProfileStatus]},
                "status_reason": {
                    "type": ["string", "null"],
                    "description": "why a profile is pending or failed, e.g. the SML's fault text",
                },
                "sml_attempts": {"type": "integer", "description": "failed SML registrations in a row"},
                "sml_retry_at": {**_STAMP, "description": "when the SML registration is tried again"},
                "created_at": {"type": "string"},
                "updated_at": {"type": "string"},
            },
        },
        "Document": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "description": "s<n> for sent, r<n> for received documents"},
                "direction": {"enum": ["SENT", "RECEIVED"]},
                "status": {"enum": [str(s) for s in DocumentStatus]},
                "kind": {"enum": ["business", "response", "mls", "mlr", "report"]},
                "mls": {"type": ["object", "null"], "description": "the receiving access point's Message Level Status"},
                "mls_flagged": {
                    "type": ["object", "null"],
                    "description": "an MLS that came for this document but breaks the MLS rules (code, rules, "
                    "mls_message_id, at); it is not taken as the answer",
                },
                "response": {"type": ["object", "null"], "description": "the business response, and where it is"},
                "answers": {"type": ["string", "null"], "description": "the document this one answers"},
                "sender": {"type": "string"},
                "receiver": {"type": "string"},
                "document_type": {"type": "string"},
                "process": {"type": "string"},
                "as4_message_id": {"type": "string"},
            },
        },
        "Webhook": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "destination_type": {"enum": ["WEBHOOK", "VENDOR_WEBHOOK"]},
                "destination": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}},
                "secret": {
                    "type": ["string", "null"],
                    "description": "only when created or rotated (null in a replayed answer)",
                },
            },
        },
        "Report": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"enum": ["TSR", "EUSR"]},
                "month": {"type": "string"},
                "status": {"enum": [str(state) for state in ReportState]},
                "valid": {"type": "boolean"},
                "errors": {"type": "array"},
                "document": {"type": ["string", "null"]},
                "receipt": {"type": "boolean"},
                "due": {"type": "string", "format": "date"},
                "overdue": {"type": "boolean"},
            },
        },
        "Delivery": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "webhook_id": {"type": "string", "format": "uuid"},
                "event_id": {"type": "string", "description": "the event's id: the receiver's idempotency key"},
                "status": {"enum": [str(state) for state in DeliveryState]},
                "attempts": {"type": "integer"},
                "next_attempt_at": _STAMP,
                "last_status": {"type": ["integer", "null"]},
                "last_error": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "delivered_at": _STAMP,
            },
        },
    }
    doc_id = [_path_param("doc_id")]
    document_ops = {
        "": {
            "post": _once(
                _op(
                    "Send a document (multipart field `file`, or an XML body)",
                    _ok(_ref("Document"), "202", "Queued"),
                    body={
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "receiver": {"type": "string"},
                                        "sender": {"type": "string"},
                                        "document_type": {"type": "string"},
                                        "process": {"type": "string"},
                                        "country": {"type": "string"},
                                        "mls_type": {"enum": ["FAILURE_ONLY", "ALWAYS_SEND"]},
                                    },
                                    "required": ["file"],
                                }
                            },
                            "application/xml": {"schema": {"type": "string"}},
                        },
                    },
                )
            ),
            "get": _op(
                "List documents, newest first",
                _ok(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _ref("Document")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    }
                ),
                params=[
                    _query("direction", {"enum": ["RECEIVED", "SENT"]}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                    _query("cursor", {"type": "string"}),
                    _query("received_at_start", {"type": "string", "format": "date-time"}),
                    _query("received_at_end", {"type": "string", "format": "date-time"}),
                    _query("sender", {"type": "string"}),
                    _query("document_type", {"type": "string"}),
                    _query("status", {"type": "string"}),
                    _query("acknowledged", {"enum": ["true", "false"]}),
                    _query("fields", {"type": "string"}),
                ],
            ),
        },
        "/{doc_id}": {"get": _op("A document's status", _ok(_ref("Document")), params=doc_id)},
        "/{doc_id}/audit": {"get": _op("Its audit trail", _ok({"type": "array"}), params=doc_id)},
        "/{doc_id}/document": {"get": _op("The business document", {"200": _XML, **_ERROR_ONLY}, params=doc_id)},
        "/{doc_id}/envelope": {"get": _op("The Peppol envelope", {"200": _XML, **_ERROR_ONLY}, params=doc_id)},
        "/{doc_id}/attachments": {"get": _op("Embedded attachments", _ok({"type": "array"}), params=doc_id)},
        "/{doc_id}/attachments/{index}": {
            "get": _op(
                "One attachment",
                {
                    "200": {"description": "the attachment", "content": {"*/*": {"schema": {"type": "string"}}}},
                    **_ERROR_ONLY,
                },
                params=[*doc_id, _path_param("index")],
            )
        },
        "/{doc_id}/acknowledge": {
            "post": _op("Mark a received document fetched", _ok(_ref("Document")), params=doc_id)
        },
    }
    paths: dict[str, Any] = {
        "/v1/ping": {
            "get": _op(
                "Liveness and database check",
                {
                    **_ok({"type": "object"}),
                    "503": {
                        "description": "Database unavailable",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                },
                public=True,
            )
        },
        "/v1/openapi.json": {"get": _op("This document", {"200": {"description": "OpenAPI"}}, public=True)},
        "/v1/ready": {
            "get": _op(
                "Readiness: database reachable and schema current",
                {
                    **_ok({"type": "object"}),
                    "503": {
                        "description": "Not ready",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                },
                public=True,
            )
        },
        "/oauth2/token": {
            "post": _op(
                "OAuth2 client credentials",
                {
                    "200": {
                        "description": "token",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "access_token": {"type": "string"},
                                        "token_type": {"const": "Bearer"},
                                        "expires_in": {"type": "integer"},
                                        "scope": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "4XX": {
                        "description": "RFC 6749 error",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "error": {"type": "string"},
                                        "error_description": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                },
                body={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "grant_type": {"const": "client_credentials"},
                                    "client_id": {"type": "string"},
                                    "client_secret": {"type": "string"},
                                    "scope": {"type": "string"},
                                },
                                "required": ["grant_type", "client_id", "client_secret"],
                            }
                        }
                    },
                },
                public=True,
            )
        },
        "/v1/companies": {
            "post": _once(
                _op(
                    "Create a company (operators)",
                    _ok(_ref("Company"), "201", "Created"),
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["name", "country", "business_id"],
                            "properties": {
                                "name": {"type": "string"},
                                "country": {"type": "string"},
                                "business_id": {"type": "string"},
                            },
                        }
                    ),
                )
            ),
            "get": _op("Companies the caller may see", _ok({"type": "array", "items": _ref("Company")})),
        },
        "/v1/companies/{company_id}": {
            "get": _op("A company", _ok(_ref("Company")), params=[_path_param("company_id")]),
            "patch": _op(
                "Change a company's validation policies and duplicate check",
                _ok(_ref("Company")),
                body=_json_body(
                    {
                        "type": "object",
                        "properties": {
                            "outbound_validation": {"enum": ["reject", "warn"]},
                            "inbound_validation": {"enum": ["off", "reject", "warn"]},
                            "duplicate_check": {
                                "type": "boolean",
                                "description": "false lets the company send a document again on purpose",
                            },
                            "positive_mls": {
                                "enum": ["on_processing", "on_acknowledge"],
                                "description": "when a positive MLS goes out for what the company receives: when "
                                "the gateway accepted it, or when the ERP acknowledges it (AB first if the "
                                "20-minute deadline nears)",
                            },
                        },
                    }
                ),
                params=[_path_param("company_id")],
            ),
        },
        "/v1/operator/reports": {
            "get": _op(
                "Peppol Reporting: this access point's TSR and EUSR", _ok({"type": "array", "items": _ref("Report")})
            ),
            "post": _op(
                "Build a month's report now (and send it)",
                _ok(_ref("Report"), "201", "Built"),
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["kind", "month"],
                        "properties": {
                            "kind": {"enum": ["TSR", "EUSR"]},
                            "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                            "send": {"type": "boolean"},
                        },
                    }
                ),
            ),
        },
        "/v1/operator/migrations/out": {
            "post": _op(
                "Prepare a participant's move to another SMP (SML PrepareToMigrate): the migration key",
                _ok(
                    {
                        "type": "object",
                        "properties": {"participant_id": {"type": "string"}, "migration_key": {"type": "string"}},
                    },
                    "201",
                    "Prepared",
                ),
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["participant_id"],
                        "properties": {"participant_id": {"type": "string"}},
                    }
                ),
            )
        },
        "/v1/operator/migrations/in": {
            "post": _op(
                "Take a participant over from its current SMP (SML Migrate) with its migration key",
                _ok(
                    {
                        "type": "object",
                        "properties": {
                            "participant_id": {"type": "string"},
                            "profiles": {"type": "array", "items": _ref("Profile")},
                        },
                    }
                ),
                body=_json_body(
                    {
                        "type": "object",
                        "required": ["participant_id", "migration_key"],
                        "properties": {"participant_id": {"type": "string"}, "migration_key": {"type": "string"}},
                    }
                ),
            )
        },
        "/v1/operator/endpoints": {
            "get": _op(
                "Receiving endpoints and their circuit breakers",
                _ok({"type": "array", "items": {"type": "object"}}),
            )
        },
        "/v1/documents/{doc_id}/response": {
            "post": _once(
                _op(
                    "Answer a received document: invoice response, order response or message level response",
                    _ok({"type": "object"}, "202", "Queued"),
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["type", "code"],
                            "properties": {
                                "type": {"enum": ["invoice_response", "order_response", "mlr"]},
                                "code": {"type": "string"},
                                "note": {"type": "string"},
                                "reasons": {"type": "array", "items": {"type": "object"}},
                                "actions": {"type": "array", "items": {"type": "object"}},
                                "lines": {"type": "array", "items": {"type": "object"}},
                                "issues": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    ),
                    params=[_path_param("doc_id")],
                )
            )
        },
        "/v1/companies/{company_id}/verify": {
            "post": _op("Verify a company (operators)", _ok(_ref("Company")), params=[_path_param("company_id")])
        },
        "/v1/api_keys": {
            "get": _op("The caller's API keys", _ok({"type": "array", "items": _ref("ApiKey")})),
            "post": _once(
                _op(
                    "Create an API key",
                    _ok(_ref("ApiKey"), "201", "Created"),
                    body=_json_body(
                        {
                            "type": "object",
                            "properties": {
                                "label": {"type": "string"},
                                "scopes": {"type": "array", "items": {"type": "string"}},
                                "expires_at": {"type": "string", "format": "date-time"},
                            },
                        },
                        required=False,
                    ),
                )
            ),
        },
        "/v1/api_keys/{key_id}": {
            "patch": _op(
                "Change an API key's label or expiry",
                _ok(_ref("ApiKey")),
                body=_json_body(
                    {
                        "type": "object",
                        "properties": {"label": {"type": "string"}, "expires_at": {"type": ["string", "null"]}},
                    }
                ),
                params=[_path_param("key_id")],
            ),
            "delete": _op("Revoke an API key", _ok(_ref("ApiKey")), params=[_path_param("key_id")]),
        },
        "/v1/api_keys/{key_id}/rotate": {
            "post": _once(
                _op(
                    "Replace an API key (the old one optionally valid for a grace period)",
                    _ok(_ref("ApiKey"), "201", "Created"),
                    body=_json_body(
                        {"type": "object", "properties": {"grace_seconds": {"type": "integer"}}}, required=False
                    ),
                    params=[_path_param("key_id")],
                )
            )
        },
        "/v1/company/profiles": {
            "post": _once(
                _op(
                    "Register the company as a Peppol receiver",
                    _ok({"type": "array", "items": _ref("Profile")}, "201", "Registered"),
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["profiles"],
                            "properties": {
                                "network": {"const": "PEPPOL"},
                                "profiles": {"type": "array", "items": {"type": "string"}},
                                "profile_version": {"enum": ["PEPPOLBIS30", "EHF30"]},
                                "participant_id": {"type": "string"},
                            },
                        }
                    ),
                )
            ),
            "get": _op("The company's profiles", _ok({"type": "array", "items": _ref("Profile")})),
        },
        "/v1/company/profiles/{profile_id}": {
            "delete": _op("Unregister a profile", _ok(_ref("Profile")), params=[_path_param("profile_id")])
        },
        "/v1/company/notifications": {
            "post": _once(
                _op(
                    "Register a webhook",
                    _ok(_ref("Webhook"), "201", "Registered"),
                    body=_json_body(
                        {
                            "type": "object",
                            "required": ["destination"],
                            "properties": {
                                "destination_type": {"enum": ["WEBHOOK", "VENDOR_WEBHOOK"]},
                                "destination": {"type": "string", "format": "uri"},
                                "events": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                )
            ),
            "get": _op("The caller's webhooks", _ok({"type": "array", "items": _ref("Webhook")})),
        },
        "/v1/company/notifications/{hook_id}": {
            "patch": _op(
                "Change a webhook",
                _ok(_ref("Webhook")),
                body=_json_body(
                    {"type": "object", "properties": {"destination": {"type": "string"}, "events": {"type": "array"}}}
                ),
                params=[_path_param("hook_id")],
            ),
            "delete": _op("Delete a webhook", _ok({"type": "object"}), params=[_path_param("hook_id")]),
        },
        "/v1/company/notifications/{hook_id}/rotate_secret": {
            "post": _op("New signing secret", _ok(_ref("Webhook")), params=[_path_param("hook_id")])
        },
        "/v1/webhook_deliveries": {
            "get": _op(
                "Deliveries, newest first, a page at a time (meta.next_cursor is the next page's cursor)",
                _ok_page({"type": "array", "items": _ref("Delivery")}),
                params=[
                    _query("status", {"enum": [str(state) for state in DeliveryState]}),
                    _query("webhook_id", {"type": "string", "format": "uuid"}, "only this webhook's deliveries"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (default 200)"),
                    _query("cursor", {"type": "string"}, "meta.next_cursor of the previous page"),
                ],
            )
        },
        "/v1/webhook_deliveries/{delivery_id}/retry": {
            "post": _op("Try a delivery again", _ok(_ref("Delivery")), params=[_path_param("delivery_id")])
        },
        "/v1/usage": {"get": _op("Documents sent and received this month", _ok({"type": "object"}))},
        "/v1/validate": {
            "post": _op(
                "Validate a document without sending it",
                _ok(
                    {
                        "type": "object",
                        "properties": {
                            "valid": {"type": "boolean"},
                            "errors": {"type": "array"},
                            "warnings": {"type": "array"},
                        },
                    }
                ),
                body={
                    "required": True,
                    "content": {
                        "application/xml": {"schema": {"type": "string"}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {"file": {"type": "string", "format": "binary"}},
                            }
                        },
                    },
                },
            )
        },
    }
    _add_content_views(schemas, document_ops)
    for base in ("/v1/documents", "/v1/invoices"):
        for suffix, ops in document_ops.items():
            paths[base + suffix] = ops
    paths.update(_mls_paths())
    paths.update(_docs_and_mcp_paths())
    directory_paths, directory_schemas = _directory_block()
    paths.update(directory_paths)
    schemas.update(directory_schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Peppol gateway API",
            "version": __version__,
            "description": "Send and receive Peppol documents; manage companies, keys, profiles and webhooks. "
            "Every answer uses one envelope; errors carry a stable code.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _mls_paths() -> dict[str, Any]:
    """The Message Level Status service levels (operators)."""
    figures = {
        "type": "object",
        "properties": {
            "partner": {"type": ["string", "null"], "description": "the other access point's seat id"},
            "count": {"type": "integer"},
            "with_mls": {"type": "integer"},
            "within_limit": {"type": "integer"},
            "share_within_limit": {"type": ["number", "null"]},
            "p50_seconds": {"type": ["number", "null"]},
            "p99_seconds": {"type": ["number", "null"]},
            "waiting": {"type": "integer"},
            "overdue": {"type": "integer"},
            "meets_target": {"type": ["boolean", "null"]},
        },
    }
    level = {
        "allOf": [
            figures,
            {
                "type": "object",
                "properties": {
                    "level": {"enum": ["MLS-1", "MLS-2"]},
                    "role": {"enum": ["sending", "receiving"]},
                    "limit_minutes": {"type": "number"},
                    "target": {"type": "number"},
                    "partners": {"type": "array", "items": figures},
                },
            },
        ]
    }
    return {
        "/v1/operator/mls": {
            "get": _op(
                "MLS service levels for a month: MLS-1 (sent within 20 minutes of the receipt) and MLS-2 "
                "(received within 25 minutes of the sending), in total and per partner access point",
                _ok(
                    {
                        "type": "object",
                        "properties": {
                            "month": {"type": "string"},
                            "levels": {"type": "array", "items": level},
                        },
                    }
                ),
                params=[_query("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "default: this month")],
            )
        }
    }


def _docs_and_mcp_paths() -> dict[str, Any]:
    """The API viewer (public) and the MCP endpoint for AI agents (the API's bearer tokens)."""
    jsonrpc = {
        "type": "object",
        "required": ["jsonrpc"],
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "id": {"type": ["string", "integer"]},
            "method": {"type": "string", "examples": ["initialize", "tools/list", "tools/call", "ping"]},
            "params": {"type": "object"},
        },
    }
    answer = {
        "type": "object",
        "required": ["jsonrpc"],
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "id": {"type": ["string", "integer", "null"]},
            "result": {"type": "object"},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            },
        },
    }
    rpc = {"application/json": {"schema": answer}}
    either = {"application/json": {"schema": {"anyOf": [answer, _ref("Error")]}}}
    session = {
        "name": "Mcp-Session-Id",
        "in": "header",
        "required": False,
        "description": "the session id answered to initialize; required on every later message",
        "schema": {"type": "string"},
    }
    version = {
        "name": "MCP-Protocol-Version",
        "in": "header",
        "required": False,
        "description": "the protocol revision agreed at initialize",
        "schema": {"type": "string"},
    }
    return {
        "/v1/docs": {
            "get": _op(
                "Interactive API documentation (Swagger UI) of this document",
                {
                    "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                    **_ERROR_ONLY,
                },
                public=True,
            )
        },
        "/v1/docs/{asset}": {
            "get": _op(
                "A file of the documentation page (scripts, styles, icons)",
                {"200": {"description": "the file"}, **_ERROR_ONLY},
                params=[_path_param("asset")],
                public=True,
            )
        },
        "/v1/mcp": {
            "post": {
                "summary": "MCP server (Model Context Protocol, Streamable HTTP transport) for AI agents",
                "description": "One JSON-RPC 2.0 message per POST, answered with one JSON message: initialize, "
                "ping, tools/list, tools/call (notifications are accepted with 202). The tools send, look up, "
                "validate, poll, download, acknowledge and answer documents and manage webhooks, each acting "
                "through this API with the caller's token, so its scopes and tenant apply. GET and DELETE "
                "are answered 405 (no server-initiated stream; sessions keep no state).",
                "parameters": [session, version],
                "requestBody": {"required": True, "content": {"application/json": {"schema": jsonrpc}}},
                "responses": {
                    "200": {"description": "The JSON-RPC answer (tool failures have result.isError)", "content": rpc},
                    "202": {"description": "A notification or response, accepted"},
                    "400": {"description": "Not a JSON-RPC message, or session or version missing", "content": rpc},
                    "401": {"description": "No valid bearer token", "content": either},
                    "403": {"description": "Another site's Origin", "content": either},
                    "415": {"description": "Not application/json", "content": rpc},
                    "4XX": {"description": "Error", "content": either},
                },
            }
        },
    }


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


_DECIMAL = _nullable("string", pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="a decimal number, exact")
_DATE = _nullable("string", format="date")
_TOTALS = "line_extension allowances charges tax_exclusive tax tax_inclusive prepaid rounding payable".split()
_REFERENCES = "order sales_order contract buyer_reference project despatch receipt accounting_cost".split()


def _content_schemas() -> dict[str, Any]:
    """The content view (gateway.documents.content): decimals as strings, dates ISO, absent null."""
    text = _nullable("string")
    address = {
        "type": ["object", "null"],
        "properties": {
            k: text for k in ("street", "additional_street", "city", "postal_zone", "subdivision", "country")
        },
    }
    party = {
        "type": ["object", "null"],
        "properties": {
            "name": text,
            "trading_name": text,
            "endpoint": {**text, "description": "EndpointID as scheme:value"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "legal_id": text,
            "vat_number": text,
            "address": address,
            "contact": {"type": ["object", "null"], "properties": {k: text for k in ("name", "telephone", "email")}},
        },
    }
    issue = {"type": "object", "properties": {"line": text, "code": text, "text": text}}
    return {
        "ContentParty": party,
        "ContentAddress": address,
        "Content": {
            "type": "object",
            "required": ["document", "root", "lines", "attachments", "version"],
            "properties": {
                "document": {
                    "type": "string",
                    "description": "invoice, credit_note, order, order_change, order_cancellation, order_response, "
                    "despatch_advice, catalogue, catalogue_response, invoice_response, mlr, mls, "
                    "application_response or other",
                },
                "root": {"type": "string"},
                "customization": text,
                "profile": text,
                "number": text,
                "type_code": text,
                "issue_date": _DATE,
                "issue_time": text,
                "due_date": _DATE,
                "delivery_date": _DATE,
                "tax_point_date": _DATE,
                "validity_start": _DATE,
                "validity_end": _DATE,
                "currency": text,
                "tax_currency": text,
                "notes": {"type": "array", "items": {"type": "string"}},
                "seller": _ref("ContentParty"),
                "buyer": _ref("ContentParty"),
                "sender": _ref("ContentParty"),
                "receiver": _ref("ContentParty"),
                "payee": _ref("ContentParty"),
                "delivery_address": _ref("ContentAddress"),
                "lines": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": text,
                            "description": text,
                            "item_description": text,
                            "item_id": text,
                            "quantity": _DECIMAL,
                            "unit": text,
                            "price": _DECIMAL,
                            "line_amount": _DECIMAL,
                            "vat_category": text,
                            "vat_rate": _DECIMAL,
                            "note": text,
                            "status_code": text,
                        },
                    },
                },
                "vat_breakdown": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "category": text,
                            "rate": _DECIMAL,
                            "taxable_amount": _DECIMAL,
                            "tax_amount": _DECIMAL,
                            "exemption_reason_code": text,
                            "exemption_reason": text,
                        },
                    },
                },
                "totals": {
                    "type": ["object", "null"],
                    "properties": {k: _DECIMAL for k in _TOTALS},
                },
                "payment_means": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            **{k: text for k in ("code", "name", "payment_id", "account", "account_name", "bank")},
                            "due_date": _DATE,
                        },
                    },
                },
                "payment_terms": text,
                "references": {
                    "type": "object",
                    "properties": {
                        **{k: text for k in _REFERENCES},
                        "invoices": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "attachments": {
                    "type": "array",
                    "description": "embedded attachments, listed (download one at .../attachments/{index})",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "id": text,
                            "description": text,
                            "filename": text,
                            "mime_code": text,
                            "size": {"type": "integer", "description": "decoded bytes"},
                        },
                    },
                },
                "response": {
                    "type": ["object", "null"],
                    "description": "what an answer says (order response, invoice response, MLR, MLS)",
                    "properties": {
                        "code": text,
                        "document": text,
                        "document_type_code": text,
                        "effective_date": _DATE,
                        "description": text,
                        "reasons": {"type": "array", "items": issue},
                        "issues": {"type": "array", "items": issue},
                    },
                },
                "version": {"type": "integer", "description": "the view's shape version"},
            },
        },
    }


def _add_content_views(schemas: dict[str, Any], document_ops: dict[str, Any]) -> None:
    """The content view and rendering of every document, its listing fields and their filters."""
    schemas.update(_content_schemas())
    listing = {
        "number": _nullable("string"),
        "issue_date": _DATE,
        "due_date": _DATE,
        "seller_name": _nullable("string"),
        "buyer_name": _nullable("string"),
        "payable_amount": _DECIMAL,
        "currency": _nullable("string"),
    }
    schemas["Document"]["properties"].update(listing)
    document_ops[""]["get"]["parameters"] += [
        _query("number", {"type": "string"}, "the document's number (ID), any case"),
        _query("amount_min", {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, "payable amount at least"),
        _query("amount_max", {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, "payable amount at most"),
        _query("issued_from", {"type": "string", "format": "date"}, "issue date on or after"),
        _query("issued_to", {"type": "string", "format": "date"}, "issue date on or before"),
        _query("partner", {"type": "string"}, "part of the seller's or buyer's name, or the other participant's id"),
    ]
    doc_id = [_path_param("doc_id")]
    document_ops["/{doc_id}/content"] = {
        "get": _op("The document as typed JSON (its content view)", _ok(_ref("Content")), params=doc_id)
    }
    document_ops["/{doc_id}/render"] = {
        "get": _op(
            "The document as a printable HTML page (self-contained)",
            {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                **_ERROR_ONLY,
            },
            params=doc_id,
        )
    }


# -- receiver discovery and the Peppol Directory ------------------------------------------------------

_NULLABLE_TEXT = {"type": ["string", "null"]}
_FAILURE = {
    "type": ["object", "null"],
    "required": ["code", "message"],
    "properties": {
        "code": {
            "type": "string",
            "examples": ["participant_unknown", "untrusted_smp_certificate", "smp_signature_invalid"],
        },
        "message": {"type": "string"},
    },
}


def _directory_block() -> tuple[dict[str, Any], dict[str, Any]]:
    """Paths and schemas of ``/v1/participants``, the business cards, the indexer's notifications
    and ``/v1/directory/search``."""
    entity = {
        "type": "object",
        "properties": {
            "name": _NULLABLE_TEXT,
            "names": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": _NULLABLE_TEXT, "language": _NULLABLE_TEXT},
                },
            },
            "country": _NULLABLE_TEXT,
            "geographical_information": _NULLABLE_TEXT,
            "identifiers": {
                "type": "array",
                "items": {"type": "object", "properties": {"scheme": _NULLABLE_TEXT, "value": _NULLABLE_TEXT}},
            },
            "websites": {"type": "array", "items": {"type": "string"}},
            "contacts": {"type": "array", "items": _ref("Contact")},
            "additional_information": _NULLABLE_TEXT,
            "registration_date": _NULLABLE_TEXT,
        },
    }
    contact = {
        "type": "object",
        "properties": {k: _NULLABLE_TEXT for k in ("type", "name", "phone", "email")},
    }
    endpoint = {
        "type": "object",
        "required": ["url", "transport_profile", "certificate_subject", "certificate_valid_until", "usable"],
        "properties": {
            "url": {"type": "string"},
            "transport_profile": {"type": "string", "examples": ["peppol-transport-as4-v2_0"]},
            "certificate_subject": {"type": "string"},
            "seat_id": _NULLABLE_TEXT,
            "certificate_valid_from": {"type": "string", "format": "date-time"},
            "certificate_valid_until": {"type": "string", "format": "date-time"},
            "activation": _STAMP,
            "expiration": _STAMP,
            "active": {"type": "boolean"},
            "certificate_trusted": {"type": "boolean", "description": "issued by a trusted Peppol AP CA"},
            "usable": {"type": "boolean", "description": "an active AS4 endpoint with a trusted certificate"},
            "problem": _NULLABLE_TEXT,
            "technical_contact": _NULLABLE_TEXT,
        },
    }
    participant = {
        "type": "object",
        "required": ["participant", "registered", "receives", "checks", "services"],
        "properties": {
            "participant": {"type": "string", "examples": ["iso6523-actorid-upis::0007:5567321707"]},
            "registered": {"type": "boolean", "description": "the SML has a record for the participant"},
            "sml_name": {"type": "string"},
            "smp_url": _NULLABLE_TEXT,
            "receives": {
                "type": "boolean",
                "description": "with a filter: every document type asked for can be delivered (active AS4 "
                "endpoint, SMP signature and endpoint certificate trusted); without: at least one can",
            },
            "checks": {
                "type": "object",
                "properties": {
                    "smp_signature": {"type": ["boolean", "null"], "description": "null: nothing to check"},
                    "ap_certificate": {"type": ["boolean", "null"]},
                },
            },
            "error": _FAILURE,
            "services": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["document_type", "receivable", "processes"],
                    "properties": {
                        "document_type": {"type": "string"},
                        "name": _NULLABLE_TEXT,
                        "receivable": {"type": "boolean"},
                        "smp_certificate_subject": _NULLABLE_TEXT,
                        "error": _FAILURE,
                        "processes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "process": {"type": "string"},
                                    "endpoints": {"type": "array", "items": _ref("ParticipantEndpoint")},
                                },
                            },
                        },
                    },
                },
            },
            "truncated": {"type": "boolean"},
            "business_card": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {
                            "participant": {"type": "string"},
                            "entities": {"type": "array", "items": _ref("BusinessEntity")},
                        },
                    },
                ]
            },
            "business_card_error": _FAILURE,
            "filter": {
                "type": "object",
                "properties": {
                    "document_types": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "document_type": {"type": "string"},
                                "receives": {"type": "boolean"},
                                "registration": _NULLABLE_TEXT,
                            },
                        },
                    },
                    "process": _NULLABLE_TEXT,
                },
            },
        },
    }
    notification = {
        "type": "object",
        "required": ["id", "participant", "action", "status", "attempts"],
        "properties": {
            "id": {"type": "integer"},
            "participant": {"type": "string"},
            "company_id": _NULLABLE_TEXT,
            "action": {"enum": [str(a) for a in IndexerAction]},
            "status": {"enum": [str(state) for state in NotificationState]},
            "attempts": {"type": "integer"},
            "last_status": {"type": ["integer", "null"]},
            "last_error": _NULLABLE_TEXT,
            "next_attempt_at": _STAMP,
            "queued_at": _STAMP,
            "sent_at": _STAMP,
            "updated_at": _STAMP,
        },
    }
    card = {
        "allOf": [_ref("BusinessEntity")],
        "type": "object",
        "required": ["company_id", "publish", "stored", "served", "participants", "directory"],
        "properties": {
            "company_id": {"type": "string", "format": "uuid"},
            "publish": {"type": "boolean"},
            "stored": {"type": "boolean", "description": "false: the defaults (the company's name and country)"},
            "served": {"type": "boolean", "description": "our SMP serves it (published and the company verified)"},
            "participants": {"type": "array", "items": {"type": "string"}},
            "business_card_urls": {"type": "array", "items": {"type": "string"}},
            "updated_at": _STAMP,
            "directory": {
                "type": "object",
                "properties": {
                    "indexer_configured": {"type": "boolean"},
                    "notifications": {"type": "array", "items": _ref("DirectoryNotification")},
                },
            },
        },
    }
    text = {"type": "string", "maxLength": 200}
    card_body = _json_body(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "publish": {"type": "boolean", "description": "serve the card and tell the Peppol Directory"},
                "name": {"type": "string", "maxLength": 1000},
                "names": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 20,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S"},
                            "language": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
                        },
                    },
                },
                "country": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
                "geographical_information": {"type": "string", "maxLength": 1000},
                "identifiers": {
                    "type": "array",
                    "maxItems": 20,
                    "items": {
                        "type": "object",
                        "required": ["scheme", "value"],
                        "properties": {
                            "scheme": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"},
                            "value": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
                        },
                    },
                },
                "websites": {
                    "type": "array",
                    "maxItems": 20,
                    "items": {"type": "string", "pattern": "^https?://\\S+$", "maxLength": 1000},
                },
                "contacts": {
                    "type": "array",
                    "maxItems": 20,
                    "items": {
                        "type": "object",
                        "properties": {"type": text, "name": text, "phone": text, "email": text},
                    },
                },
                "additional_information": {"type": "string", "maxLength": 4000},
                "registration_date": {"type": "string", "format": "date"},
            },
        }
    )
    search = {
        "type": "object",
        "required": ["total", "matches"],
        "properties": {
            "total": {"type": "integer"},
            "matches": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "participant": {"type": "string"},
                        "document_types": {"type": "array", "items": {"type": "string"}},
                        "entities": {"type": "array", "items": _ref("BusinessEntity")},
                    },
                },
            },
        },
    }
    paths: dict[str, Any] = {
        "/v1/participants/{participant}": {
            "get": _op(
                "Can this participant receive it? Its SML record, SMP, every document type and process it "
                "receives with the endpoint, transport profile and certificate, our checks, its business card",
                {
                    **_ok(_ref("ParticipantCheck")),
                    "503": {
                        "description": "The SML or the participant's SMP did not answer (discovery_unavailable): "
                        "try again later",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                },
                params=[
                    {
                        "name": "participant",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "examples": {"norway": {"value": "0192:923456783"}},
                        "description": "ICD:id or iso6523-actorid-upis::ICD:id; a broken check digit is a 400 "
                        "naming the rule",
                    },
                    _query("document_type", {"type": "string"}, "only this document type (scheme::value)"),
                    _query("profile", {"type": "string"}, "only the document types of a receiving profile"),
                    _query("profile_version", {"type": "string"}, "the profile's version (default PEPPOLBIS30)"),
                    _query("process", {"type": "string"}, "only this process (scheme::value)"),
                ],
            )
        },
        "/v1/directory/search": {
            "get": _op(
                "Search the Peppol Directory (by name, identifier, country)",
                _ok(search),
                params=[
                    _query("q", {"type": "string", "maxLength": 200}, "search terms"),
                    _query("country", {"type": "string", "pattern": "^[A-Za-z]{2}$"}, "ISO 3166 alpha-2"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "at most (default 20)"),
                ],
            )
        },
        "/v1/company/business_card": {
            "get": _op("The caller's Peppol Directory business card", _ok(_ref("BusinessCard"))),
            "put": _op(
                "Store the business card; with publish, our SMP serves it and the Directory is told",
                _ok(_ref("BusinessCard")),
                body=card_body,
            ),
        },
        "/v1/companies/{company_id}/business_card": {
            "get": _op("A company's business card", _ok(_ref("BusinessCard")), params=[_path_param("company_id")]),
            "put": _op(
                "Store a company's business card",
                _ok(_ref("BusinessCard")),
                body=card_body,
                params=[_path_param("company_id")],
            ),
        },
        "/v1/operator/directory_notifications": {
            "get": _op(
                "What the Peppol Directory's indexer was told (or is still to be told), newest first",
                _ok({"type": "array", "items": _ref("DirectoryNotification")}),
                params=[_query("status", {"enum": [str(state) for state in NotificationState]})],
            )
        },
        "/v1/operator/directory_notifications/{notification_id}/retry": {
            "post": _op(
                "Tell the indexer again, now",
                _ok(_ref("DirectoryNotification")),
                params=[_path_param("notification_id")],
            )
        },
    }
    schemas = {
        "ParticipantCheck": participant,
        "ParticipantEndpoint": endpoint,
        "BusinessEntity": entity,
        "Contact": contact,
        "BusinessCard": card,
        "DirectoryNotification": notification,
    }
    return paths, schemas


async def serve_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
