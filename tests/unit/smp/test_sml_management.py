"""The SML management interface without a network: the requests each operation builds, how
the SML's answers and faults are read, and the migration key rules (SML 1.3.0)."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from smp import (
    ParticipantId,
    RegistrationError,
    SmlFault,
    check_migration_key,
    logical_address,
    management_url,
    new_migration_key,
)
from smp._management import (
    BDMSL_DATA,
    IDS,
    LRS,
    SOAP11,
    change_certificate_call,
    migration_call,
    page_call,
    parse_fault,
    parse_participant_page,
    parse_smp_record,
    participant_call,
    smp_call,
    smp_id_call,
)

PID = ParticipantId.parse("0192:991825827")
NINE = " " * 9


def _op(body: bytes) -> etree._Element:
    root = etree.fromstring(body)
    assert root.tag == f"{{{SOAP11}}}Envelope"
    return root.find(f"{{{SOAP11}}}Body")[0]  # type: ignore[index]


def test_smp_record_calls_carry_the_addresses_then_the_id() -> None:
    call = smp_call("create", "GW-SMP-1", "https://smp.example/smp", "192.0.2.1")
    assert (call.service, call.action) == (
        "manageservicemetadata",
        "http://busdox.org/serviceMetadata/ManageServiceMetadataService/1.0/:createIn",
    )
    op = _op(call.body)
    assert op.tag == f"{{{LRS}}}CreateServiceMetadataPublisherService"
    assert [etree.QName(c).localname for c in op] == ["PublisherEndpoint", "ServiceMetadataPublisherID"]
    assert [c.text for c in op[0]] == ["https://smp.example/smp", "192.0.2.1"]
    assert etree.QName(_op(smp_call("update", "X", "https://a", "1.1.1.1").body)).localname == (
        "UpdateServiceMetadataPublisherService"
    )
    read = smp_id_call("read", "GW-SMP-1")
    assert read.action.endswith("/1.0/:readIn")
    assert _op(read.body).findtext(f"{{{LRS}}}ServiceMetadataPublisherID") == "GW-SMP-1"
    delete = _op(smp_id_call("delete", "GW-SMP-1").body)
    assert (delete.tag, delete.text) == (f"{{{LRS}}}ServiceMetadataPublisherID", "GW-SMP-1")


def test_participant_calls_use_the_nine_blank_actions() -> None:
    for operation, element in (("create", "CreateParticipantIdentifier"), ("delete", "DeleteParticipantIdentifier")):
        call = participant_call(operation, "GW-SMP-1", PID)
        assert call.service == "manageparticipantidentifier"
        assert (
            call.action == f"http://busdox.org/serviceMetadata/ManageBusinessIdentifierService/1.0/{NINE}:{operation}In"
        )
        op = _op(call.body)
        assert etree.QName(op).localname == element
        pid = op.find(f"{{{IDS}}}ParticipantIdentifier")
        assert pid is not None and (pid.get("scheme"), pid.text) == ("iso6523-actorid-upis", "0192:991825827")
    page = page_call("GW-SMP-1", "2")
    assert page.action.endswith(f"{NINE}:listIn")
    assert _op(page.body).findtext(f"{{{LRS}}}NextPageIdentifier") == "2"
    prepare = migration_call("prepareMigrate", "GW-SMP-1", PID, "Ab12#$cdEF34")
    assert prepare.action.endswith(f"{NINE}:prepareMigrateIn")
    op = _op(prepare.body)
    assert etree.QName(op).localname == "PrepareMigrationRecord"
    assert [etree.QName(c).localname for c in op] == [
        "ServiceMetadataPublisherID", "ParticipantIdentifier", "MigrationKey",
    ]  # fmt: skip
    assert etree.QName(_op(migration_call("migrate", "N", PID, "Ab12#$cdEF34").body)).localname == (
        "CompleteMigrationRecord"
    )


def test_change_certificate_is_a_bdmsl_call() -> None:
    call = change_certificate_call("-----BEGIN CERTIFICATE-----\nMII...\n-----END CERTIFICATE-----\n", date(2027, 1, 2))
    assert (call.service, call.action) == ("bdmslservice", "ec:services:wsdl:BDMSL:1.0:prepareChangeCertificateIn")
    op = _op(call.body)
    assert op.tag == f"{{{BDMSL_DATA}}}PrepareChangeCertificate"
    assert op.findtext(f"{{{BDMSL_DATA}}}migrationDate") == "2027-01-02"
    assert op.findtext(f"{{{BDMSL_DATA}}}newCertificatePublicKey", "").startswith("-----BEGIN CERTIFICATE-----")


FAULT = f"""<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode>
<faultstring>generic</faultstring><detail><lrs:NotFoundFault xmlns:lrs="{LRS}">
<lrs:FaultMessage>[ERR-100] The SMP 'X' doesn't exist.</lrs:FaultMessage></lrs:NotFoundFault></detail>
</soap:Fault></soap:Body></soap:Envelope>""".encode()


def test_faults_carry_the_smls_text_and_kind() -> None:
    fault = parse_fault("create", FAULT, 500)
    assert isinstance(fault, RegistrationError)
    assert (fault.kind, fault.fault, fault.retryable) == (
        "NotFoundFault",
        "[ERR-100] The SMP 'X' doesn't exist.",
        False,
    )
    assert "[ERR-100]" in str(fault)
    internal = parse_fault("create", FAULT.replace(b"NotFoundFault", b"InternalErrorFault"), 500)
    assert internal.retryable
    bare = parse_fault(
        "create", FAULT.replace(b"<lrs:FaultMessage>[ERR-100] The SMP 'X' doesn't exist.</lrs:FaultMessage>", b""), 500
    )
    assert bare.fault == "generic"
    proxy = parse_fault("read", b"<html>Bad gateway</html>", 502)
    assert proxy.kind is None and proxy.retryable and "HTTP 502" in proxy.fault
    forbidden = parse_fault("read", b"Forbidden", 403)
    assert isinstance(forbidden, SmlFault) and not forbidden.retryable


def test_answers_are_read() -> None:
    record = f"""<s:Envelope xmlns:s="{SOAP11}"><s:Body><ServiceMetadataPublisherService xmlns="{LRS}">
      <PublisherEndpoint><LogicalAddress>https://smp.example</LogicalAddress>
      <PhysicalAddress>192.0.2.1</PhysicalAddress></PublisherEndpoint>
      <ServiceMetadataPublisherID>GW-SMP-1</ServiceMetadataPublisherID></ServiceMetadataPublisherService>
      </s:Body></s:Envelope>""".encode()
    smp_record = parse_smp_record(record)
    assert (smp_record.smp_id, smp_record.logical_address, smp_record.physical_address) == (
        "GW-SMP-1", "https://smp.example", "192.0.2.1",
    )  # fmt: skip
    page = f"""<s:Envelope xmlns:s="{SOAP11}"><s:Body><lrs:ParticipantIdentifierPage xmlns:lrs="{LRS}"
      xmlns:ids="{IDS}"><ids:ParticipantIdentifier scheme="iso6523-actorid-upis">0192:991825827</ids:ParticipantIdentifier>
      <ids:ParticipantIdentifier scheme="other">x</ids:ParticipantIdentifier>
      <lrs:ServiceMetadataPublisherID>GW-SMP-1</lrs:ServiceMetadataPublisherID>
      <lrs:NextPageIdentifier>abc</lrs:NextPageIdentifier></lrs:ParticipantIdentifierPage></s:Body></s:Envelope>""".encode()
    parsed = parse_participant_page(page)
    assert parsed.participants == [PID] and parsed.next_page == "abc"
    with pytest.raises(SmlFault, match="ParticipantIdentifierPage"):
        parse_participant_page(record)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("Ab1#", "8 to 24"),
        ("Ab12#$cdEF34Ab12#$cdEF34x", "8 to 24"),
        ("ab12#$cdef34", "upper case"),
        ("AB12#$CDEF34", "lower case"),
        ("Abcd#$cdEFgh", "digits"),
        ("Ab12cdEF34gh", "@#$%"),
        ("Ab12#$cd EF34", "only letters"),
        ("Ab12#$cd_EF34", "only letters"),
    ],
)
def test_migration_keys_follow_the_sml_rules(key: str, problem: str) -> None:
    with pytest.raises(RegistrationError, match=problem.replace("$", r"\$")):
        check_migration_key(key)


def test_generated_migration_keys_always_pass() -> None:
    keys = {new_migration_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(check_migration_key(k) == k and len(k) == 16 for k in keys)
    assert len(new_migration_key(24)) == 24


def test_logical_address_and_management_urls_per_zone() -> None:
    assert logical_address("https://smp.example/smp/", "production") == "https://smp.example/smp"
    with pytest.raises(RegistrationError, match="https"):
        logical_address("http://smp.example", "test")
    assert logical_address("http://127.0.0.1:8080/smp", "sml.local.test") == "http://127.0.0.1:8080/smp"
    assert management_url("production") == "https://api.sml.prod.tech.peppol.org/edelivery-sml"
    assert (
        management_url("participant.sml.test.tech.peppol.org.") == "https://api.sml.test.tech.peppol.org/edelivery-sml"
    )
    assert management_url("sml.local.test") is None
