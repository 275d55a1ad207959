"""The MCP tools' input schemas and the check of arguments against them (no database)."""

from __future__ import annotations

import pytest

from gateway.api.mcp import PROTOCOL_VERSIONS, negotiate
from gateway.api.mcp_tools import TOOLS, check_arguments

BY_NAME = {tool.name: tool for tool in TOOLS}


def test_every_tool_has_an_object_schema_that_names_its_required_arguments() -> None:
    assert len(BY_NAME) == len(TOOLS)
    for tool in TOOLS:
        schema = tool.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False, tool.name
        assert set(schema.get("required", [])) <= set(schema["properties"]), tool.name
        assert tool.description and tool.title


@pytest.mark.parametrize(
    ("tool", "arguments", "broken"),
    [
        ("get_document", {"id": "s12"}, None),
        ("get_document", {}, "arguments.id is required"),
        ("get_document", {"id": "../companies"}, "arguments.id must match"),
        ("get_document", {"id": "r1", "extra": 1}, "arguments.extra is not an argument"),
        ("acknowledge_document", {"id": "s1"}, "arguments.id must match"),
        ("list_documents", {"limit": 501}, "arguments.limit must be from 1 to 500"),
        ("list_documents", {"limit": True}, "arguments.limit must be an integer"),
        ("list_documents", {"direction": "BOTH"}, "arguments.direction must be one of"),
        ("list_documents", {"acknowledged": "no"}, "arguments.acknowledged must be a boolean"),
        ("create_webhook", {"destination": "https://x", "events": []}, "arguments.events needs at least 1"),
        ("create_webhook", {"destination": "https://x", "events": ["nope"]}, "arguments.events[0] must be one of"),
        ("answer_document", {"id": "r1", "type": "invoice_response", "code": "AP", "reasons": ["x"]},
         "arguments.reasons[0] must be an object"),
    ],
)  # fmt: skip
def test_arguments_are_checked_against_the_schema(tool: str, arguments: dict[str, object], broken: str | None) -> None:
    found = check_arguments(BY_NAME[tool].input_schema, arguments)
    assert (found is None) if broken is None else (found is not None and found.startswith(broken)), found


def test_the_protocol_revision_is_the_clients_when_spoken_else_the_newest() -> None:
    assert negotiate("2025-06-18") == "2025-06-18"
    assert negotiate("2024-11-05") == PROTOCOL_VERSIONS[0]
    assert negotiate(None) == PROTOCOL_VERSIONS[0]
