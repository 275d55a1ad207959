"""The SML management client: the SOAP requests it sends and how it reads the SML's answers.

The real SML needs mutual TLS with a Peppol SMP certificate and the network; here an HTTP
endpoint on loopback checks each request against the ManageBusinessIdentifier WSDL's rules and
answers as the SML does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from smp import ParticipantId, RegistrationError, SmlManagementClient

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
LRS = "http://busdox.org/serviceMetadata/locator/1.0/"
IDS = "http://busdox.org/transport/identifiers/1.0/"
ACTION_PREFIX = "http://busdox.org/serviceMetadata/ManageBusinessIdentifierService/1.0/         :"
FAULT = f"""<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode>
<faultstring>fault</faultstring><detail><lrs:NotFoundFault xmlns:lrs="{LRS}"><lrs:FaultMessage>[ERR-100] The SMP 'UNKNOWN' doesn't exist.</lrs:FaultMessage></lrs:NotFoundFault></detail></soap:Fault></soap:Body></soap:Envelope>"""


@pytest.fixture
async def sml() -> AsyncIterator[tuple[str, list[tuple[str, etree._Element]]]]:
    seen: list[tuple[str, etree._Element]] = []

    async def manage(request: web.Request) -> web.Response:
        body = etree.fromstring(await request.read())
        seen.append((request.headers["SOAPAction"], body))
        smp_id = body.findtext(f".//{{{LRS}}}ServiceMetadataPublisherID")
        if smp_id != "GW-SMP-1":
            return web.Response(status=500, body=FAULT.encode(), content_type="text/xml")
        return web.Response(
            body=f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body/></soap:Envelope>'.encode(),
            content_type="text/xml",
        )

    app = web.Application()
    app.router.add_post("/edelivery-sml/manageparticipantidentifier", manage)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/edelivery-sml")), seen
    await server.close()


async def test_create_sends_the_wsdl_action_and_identifiers(sml) -> None:  # type: ignore[no-untyped-def]
    url, seen = sml
    await SmlManagementClient(url, "GW-SMP-1").register(ParticipantId.parse("0192:991825827"))
    action, body = seen[0]
    assert action == f'"{ACTION_PREFIX}createIn"'
    assert body.tag == f"{{{SOAP}}}Envelope"
    op = body.find(f"{{{SOAP}}}Body/{{{LRS}}}CreateParticipantIdentifier")
    assert op is not None
    assert op.findtext(f"{{{LRS}}}ServiceMetadataPublisherID") == "GW-SMP-1"
    pid = op.find(f"{{{IDS}}}ParticipantIdentifier")
    assert (pid.get("scheme"), pid.text) == ("iso6523-actorid-upis", "0192:991825827")


async def test_delete_uses_the_delete_operation(sml) -> None:  # type: ignore[no-untyped-def]
    url, seen = sml
    await SmlManagementClient(url, "GW-SMP-1").unregister(ParticipantId.parse("0007:2120000787"))
    action, body = seen[0]
    assert action.endswith(':deleteIn"')
    assert body.find(f".//{{{LRS}}}DeleteParticipantIdentifier") is not None


async def test_sml_fault_message_is_reported(sml) -> None:  # type: ignore[no-untyped-def]
    url, _ = sml
    with pytest.raises(RegistrationError, match="ERR-100"):
        await SmlManagementClient(url, "UNKNOWN").register(ParticipantId.parse("0192:991825827"))


async def test_unreachable_sml_is_retryable() -> None:
    with pytest.raises(RegistrationError) as info:
        await SmlManagementClient("http://127.0.0.1:9/edelivery-sml", "GW-SMP-1", timeout=2).register(
            ParticipantId.parse("0192:991825827")
        )
    assert info.value.retryable
