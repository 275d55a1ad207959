"""The gateway against phase4 (`com.helger.phase4` 4.4.1, the reference Java Peppol AS4
implementation), run as one JVM for the whole session (tests/support/peers/phase4, built by .ci/phase4):

* phase4's Peppol sender (``Phase4PeppolSender``) sends to our ``/as4``, once to a given endpoint
  and once through discovery: its own U-NAPTR lookup in our SML zone (Knot) and its own SMP client
  against our SMP, verifying our SMP signature itself. It checks our receipt: the signature, and the
  non-repudiation digests against those it signed (``signalMsgValidationResultHdl``).
* phase4's AS4 servlet handler (``AS4XServletHandler``, the Peppol P-Mode from
  ``phase4-profile-peppol``) in an embedded Jetty receives from our outbound worker.

What had to be configured in phase4 for the dev PKI, and why (no check is switched off but
revocation, which the dev certificates cannot support):

* Peppol CA pinning: phase4 only accepts AP certificates issued by the Peppol G3 AP CAs
  (``PeppolTrustedCA.peppolAllAP()``). The sender's ``peppolAP_CAChecker`` and the receiver's
  signing-certificate check use a ``TrustedCAChecker`` of the dev AP CA instead.
* Revocation (OCSP, then CRL): the dev certificates carry no OCSP or CRL pointers, so that checker
  runs with ``ERevocationCheckMode.NONE`` (phase4's default is OCSP, then CRL; nothing here could
  answer either).
* WSS4J trust: the crypto factory's trust store holds the dev AP CA and root (phase4 uses it for
  the receipt's signature); the receiver, as phase4's Peppol servlet does, lets WSS4J check the
  signature with the certificate from the message and decides trust with the CA checker.
* SMP trust: the SMP client's trust store holds the dev SMP CA and root, instead of the Peppol SMP
  CAs; signature verification stays on.
* DNS: phase4's resolver (dnsjava) is pointed at the local Knot server (loopback, a high port).

``phase4-peppol-servlet`` (the Peppol receiver SPI with its SBDH handler) is not served by the Maven
repository this project builds from (only 2.0.0 resolves), so the peer's receiver implements that
SPI itself on phase4-lib: the same checks in the same order (encrypted, signed, both certificates as
BinarySecurityTokens, signer under the AP CA) and the SBDH read with ``peppol-sbdh``'s
``PeppolSBDHDataReader``. Differences in behaviour found are each a named test below.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509

import as4
import smp
from gateway.dev.dns import KnotDns
from gateway.dev.pki import DevPki, create_dev_pki
from gateway.outbound import queries as outbound_queries
from gateway.outbound.submission import derive_submission, submit_document
from tests.support.as4 import NS, RECEIVER, SENDER, build, tamper
from tests.support.gateways import InProcessGateway, in_process_gateway, new_database, register_company, wait_for_state
from tests.support.paths import EXAMPLES
from tests.support.phase4 import PeerBuildError, ensure_peer_built
from tests.support.phase4 import Phase4Peer as _Phase4Peer
from tests.support.services import SML_ZONE
from tests.support.smp import MemorySource


class Phase4Peer(_Phase4Peer):
    async def send(self, **fields: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.request, "send", **self.send_fields(**fields))


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A second PKI of the same shape that nothing of ours trusts."""
    return create_dev_pki(tmp_path_factory.mktemp("foreign-pki"))


@pytest.fixture(scope="session")
def phase4(
    dev_pki: DevPki, foreign_pki: DevPki, knot: KnotDns, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Phase4Peer]:
    """phase4 as access point POP000002 (the dev PKI's ap2), for the whole session."""
    try:
        ensure_peer_built()
    except PeerBuildError as exc:
        pytest.fail(str(exc))
    f = foreign_pki.directory
    work = tmp_path_factory.mktemp("phase4")
    peer = Phase4Peer(work / "store", work / "phase4.log")
    try:
        started = time.monotonic()
        answer = peer.init(
            dev_pki.directory, peer.store, dns=knot.address,
            foreign_key=str(f / "ap2.key.pem"), foreign_cert=str(f / "ap2.cert.pem"),
        )  # fmt: skip
        assert answer["seat_id"] == "POP000002" and answer["phase4_version"] == "4.4.1", answer
        print(f"phase4 peer up in {time.monotonic() - started:.1f}s on port {peer.port}")
        yield peer
    finally:
        peer.stop()


async def mailbox(gw: InProcessGateway, company: Any) -> list[tuple[str, str, str]]:
    rows = await gw.pool.fetch(
        "SELECT m.sending_ap, m.sender_value, m.as4_message_id FROM mailbox_entries e "
        "JOIN inbound_messages m ON m.id = e.message_id WHERE e.company_id = $1",
        company,
    )
    return [(r["sending_ap"], r["sender_value"], r["as4_message_id"]) for r in rows]


def assert_receipt_accepted_by_phase4(result: dict[str, Any]) -> None:
    assert result["result"] == "SUCCESS", result
    assert result["nrr"] == ["success"], result  # digests in our receipt == the ones phase4 signed
    assert result["receipt_signature_checked"] is True, result
    assert "CN=POP000001" in result["receipt_signer"], result
    assert result["errors"] == [] and result["exceptions"] == [], result


# --- phase4 -> us ----------------------------------------------------------------------------


async def test_phase4_sends_to_our_endpoint_directly(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, phase4: Phase4Peer
) -> None:
    async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as b:
        company = await register_company(b, "Norsk Kjøp AS", "NO", RECEIVER, "INVOICE_AND_CREDIT_NOTE")
        result = await phase4.send(url=b.as4_url, endpoint_cert=str(dev_pki.directory / "ap1.cert.pem"))
        assert_receipt_accepted_by_phase4(result)
        entries = await mailbox(b, company)
        assert [(ap, sender) for ap, sender, _ in entries] == [("POP000002", SENDER)]


async def test_phase4_finds_us_through_sml_and_smp(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, phase4: Phase4Peer
) -> None:
    async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot, workers=False) as b:
        company = await register_company(b, "Norsk Kjøp AS", "NO", RECEIVER, "INVOICE_AND_CREDIT_NOTE")
        result = await phase4.send(sml_zone=SML_ZONE)
        assert result["smp_url"] == f"{b.url}/smp/", result  # from phase4's own U-NAPTR lookup
        assert result["endpoint_url"] == b.as4_url, result  # from our signed SMP metadata
        assert result["endpoint_cert_check"] == "VALID", result
        assert_receipt_accepted_by_phase4(result)
        entries = await mailbox(b, company)
        assert [(ap, sender) for ap, sender, _ in entries] == [("POP000002", SENDER)]


# --- us -> phase4 ----------------------------------------------------------------------------


async def test_our_worker_delivers_to_phase4(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, phase4: Phase4Peer
) -> None:
    before = len(phase4.received())
    async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a:
        derived = derive_submission((EXAMPLES / "invoice.xml").read_bytes())
        job = await submit_document(
            a.pool, derived, retry_window=30,
            endpoint_url=phase4.url(), endpoint_cert=dev_pki.access_points["ap2"].cert,
        )  # fmt: skip
        state = await wait_for_state(a.pool, job, {"delivered", "failed"})
        status = await outbound_queries.outbound_status(a.pool, job)
        assert state == "delivered", status  # our worker verified phase4's receipt and its NRR digests
        assert status is not None
    new = phase4.received()[before:]
    assert len(new) == 1, new
    entry = new[0]
    assert (entry["from_party"], entry["to_party"]) == ("POP000001", "POP000002")
    assert "CN=POP000001" in entry["signer"]
    assert (entry["sender"], entry["receiver"]) == (derived.sender.value, derived.receiver.value)
    assert (phase4.store / entry["file"]).read_bytes() == derived.sbd


# A participant of its own, so no other test's SML record for it is overwritten or relied on.
PHASE4_PARTICIPANT = smp.ParticipantId.parse("0088:7399000000428")


@pytest.fixture
async def phase4_published(knot: KnotDns, dev_pki: DevPki, phase4: Phase4Peer) -> AsyncIterator[str]:
    """phase4's receiver published as PHASE4_PARTICIPANT's endpoint: an SMP of its own on loopback
    (our SMP only ever names our own endpoint) with a NAPTR record for it in the test SML zone."""
    source = MemorySource()
    endpoint = smp.Endpoint(
        url=phase4.url(), certificate=dev_pki.access_points["ap2"].cert, description="phase4 test peer",
        technical_contact="mailto:ops@phase4.test",
    )  # fmt: skip
    source.services[PHASE4_PARTICIPANT] = {
        doc.document_type: smp.ServiceMetadata(
            PHASE4_PARTICIPANT, doc.document_type, tuple(smp.ProcessEntry(p, (endpoint,)) for p in doc.processes)
        )
        for doc in smp.profile_services("INVOICE_AND_CREDIT_NOTE")
    }
    server = TestServer(smp.smp_application(source, dev_pki.smp.key, dev_pki.smp.cert), host="127.0.0.1")
    await server.start_server()
    smp_url = str(server.make_url("")).rstrip("/")
    sml = smp.LocalSml(SML_ZONE, knot.address, smp_url, key_name=knot.key_name, key_secret=knot.secret)
    await sml.register(PHASE4_PARTICIPANT)
    try:
        yield smp_url
    finally:
        await sml.unregister(PHASE4_PARTICIPANT)
        await server.close()


async def test_our_worker_finds_phase4_through_sml_and_smp(
    pg_dsn: str, template_db: str, dev_pki: DevPki, knot: KnotDns, phase4: Phase4Peer, phase4_published: str
) -> None:
    before = len(phase4.received())
    invoice = (EXAMPLES / "invoice.xml").read_bytes()
    invoice = invoice.replace(
        b'<cbc:EndpointID schemeID="0216">003720774740</cbc:EndpointID>',
        b'<cbc:EndpointID schemeID="0088">7399000000428</cbc:EndpointID>',
    )
    derived = derive_submission(invoice)
    assert derived.receiver == PHASE4_PARTICIPANT
    async with in_process_gateway(dev_pki, "ap1", await new_database(pg_dsn, template_db), knot) as a:
        job = await submit_document(a.pool, derived, retry_window=30)  # no endpoint given: discovery
        state = await wait_for_state(a.pool, job, {"delivered", "failed"})
        status = await outbound_queries.outbound_status(a.pool, job)
        assert state == "delivered", status
        row = await a.pool.fetchrow(
            "SELECT endpoint_url, fixed_endpoint, receiver_ap, receipt, as4_message_id "
            "FROM outbound_messages WHERE id = $1",
            job,
        )
    assert row is not None
    # the endpoint (and receiving seat, from its certificate) came from the SMP the SML named
    assert (row["endpoint_url"], row["fixed_endpoint"], row["receiver_ap"]) == (phase4.url(), False, "POP000002")
    # the receipt we kept: phase4's, signed with phase4's key, with non-repudiation digests
    # (our worker marks a job delivered only once they equal the ones it signed)
    receipt = as4.parse_signal(row["receipt"], as4.SOAP_CONTENT_TYPE)
    assert receipt.ref_to_message_id == row["as4_message_id"]
    assert receipt.signer_certificate == dev_pki.access_points["ap2"].cert
    assert len(receipt.digests) == 3
    new = phase4.received()[before:]
    assert [(e["message_id"], e["receiver"], e["from_party"]) for e in new] == [
        (row["as4_message_id"], PHASE4_PARTICIPANT.value, "POP000001")
    ]
    assert (phase4.store / new[0]["file"]).read_bytes() == derived.sbd


async def test_phase4_receipt_carries_the_digests_we_signed(dev_pki: DevPki, phase4: Phase4Peer) -> None:
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    message = build(ap1, ap2)
    async with aiohttp.ClientSession() as session:
        receipt = await as4.send_message(session, phase4.url(), message, receiver_cert=ap2.cert)
    # send_message verified it; spelled out: same message, each of our references, phase4's cert
    assert receipt.ref_to_message_id == message.header.message_id
    assert receipt.digests == message.digests and len(receipt.digests) == 3
    assert receipt.signer_certificate == ap2.cert


# --- negative controls -----------------------------------------------------------------------


async def test_phase4_refuses_a_message_we_corrupted_after_signing(dev_pki: DevPki, phase4: Phase4Peer) -> None:
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    before = len(phase4.received())

    def change_original_sender(root: Any) -> None:
        (prop,) = root.xpath("//eb:Property[@name='originalSender']", namespaces=NS)
        prop.text = "0007:5560000000"

    message = tamper(build(ap1, ap2), soap=change_original_sender)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(as4.EbmsErrorReceived) as refused:
            await as4.send_message(session, phase4.url(), message, receiver_cert=ap2.cert)
    (error,) = refused.value.errors
    assert error.severity == "failure" and error.code in {"EBMS:0101", "EBMS:0102"}, error
    assert len(phase4.received()) == before


# --- interop differences (each one named) ----------------------------------------------------


async def test_phase4_reports_a_broken_signature_as_failed_decryption(dev_pki: DevPki, phase4: Phase4Peer) -> None:
    """WSS4J decrypts and verifies in one pass; phase4 4.4.1 maps its failure to EBMS:0102
    FailedDecryption (not EBMS:0101 FailedAuthentication) and leaves out refToMessageInError, so a
    sender cannot tie the error to its message by that attribute. Our sender treats any failure
    error as not delivered, whatever the code."""
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]

    def change_message_id(root: Any) -> None:
        (mid,) = root.xpath("//eb:MessageInfo/eb:MessageId", namespaces=NS)
        mid.text = "changed-after-signing@sender.test"

    message = tamper(build(ap1, ap2), soap=change_message_id)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(as4.EbmsErrorReceived) as refused:
            await as4.send_message(session, phase4.url(), message, receiver_cert=ap2.cert)
    (error,) = refused.value.errors
    assert (error.code, error.short_description, error.ref_to_message_id) == ("EBMS:0102", "FailedDecryption", None)
    assert refused.value.retryable is False


async def test_phase4_4_4_answers_a_duplicate_with_ebms_0004(dev_pki: DevPki, phase4: Phase4Peer) -> None:
    """A resent MessageId: phase4 4.4.1 answers EBMS:0004 (Other) with a "duplicate" detail, not a
    second receipt (nor EBMS:4001, which later phase4 versions use), and stores it once."""
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    message = build(ap1, ap2)
    async with aiohttp.ClientSession() as session:
        await as4.send_message(session, phase4.url(), message, receiver_cert=ap2.cert)
        with pytest.raises(as4.EbmsErrorReceived) as again:
            await as4.send_message(session, phase4.url(), message, receiver_cert=ap2.cert)
    (error,) = again.value.errors
    assert error.code == "EBMS:0004" and "duplicate" in error.detail, error
    assert [e["message_id"] for e in phase4.received()].count(message.header.message_id) == 1


async def test_phase4_receipt_carries_an_extra_phase4_element_we_ignore(dev_pki: DevPki, phase4: Phase4Peer) -> None:
    """phase4 puts its own ``<phase4 xmlns="urn:fdc:com.helger.phase4:ns:info">`` element into
    eb:Receipt next to the NonRepudiationInformation; our receipt parser must (and does) skip it."""
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    message = build(ap1, ap2)
    async with aiohttp.ClientSession() as session:
        receipt = await as4.send_message(session, phase4.url(), message, receiver_cert=ap2.cert)
    assert b"urn:fdc:com.helger.phase4:ns:info" in receipt.raw
    assert receipt.digests == message.digests


async def test_we_refuse_a_receipt_signed_with_a_key_we_do_not_trust(
    dev_pki: DevPki, foreign_pki: DevPki, phase4: Phase4Peer
) -> None:
    ap1, ap2 = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    message = build(ap1, ap2)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(as4.InvalidReceipt):
            await as4.send_message(session, phase4.url("/as4-foreign"), message, receiver_cert=ap2.cert)
    # phase4 did take the message in: only its receipt's signer is foreign
    assert phase4.received()[-1]["message_id"] == message.header.message_id
    foreign = foreign_pki.access_points["ap2"].cert
    assert foreign.subject == ap2.cert.subject and foreign != ap2.cert
    assert isinstance(foreign, x509.Certificate)
