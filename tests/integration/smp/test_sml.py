"""SML lookup and registration against a real DNS server (Knot) with RFC 2136 updates."""

from __future__ import annotations

import dns.asyncquery
import dns.name
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from gateway.dev.dns import KnotDns
from smp import (
    DnsFailure,
    LocalSml,
    MalformedRecord,
    NotRegistered,
    ParticipantId,
    RegistrationError,
    SmlLookup,
    dns_name,
)
from tests.support.services import SML_ZONE

NORWAY = ParticipantId.parse("0192:991825827")
SWEDEN = ParticipantId.parse("0007:2120000787")


def registrar(knot: KnotDns, smp_url: str = "http://127.0.0.1:8081/smp") -> LocalSml:
    return LocalSml(SML_ZONE, knot.address, smp_url, key_name=knot.key_name, key_secret=knot.secret)


async def _raw_update(knot: KnotDns, participant: ParticipantId, rdata: str) -> None:
    keyring = dns.tsigkeyring.from_text({knot.key_name: ("hmac-sha256", knot.secret)})
    update = dns.update.UpdateMessage(
        SML_ZONE + ".",
        keyring=keyring,
        keyname=dns.name.from_text(knot.key_name),
        keyalgorithm=dns.tsig.HMAC_SHA256,
    )
    update.replace(dns_name(participant, SML_ZONE) + ".", 60, "NAPTR", rdata)
    host, port = knot.address.split(":")
    await dns.asyncquery.tcp(update, host, port=int(port), timeout=3)


async def test_registered_participant_resolves_to_its_smp(knot: KnotDns) -> None:
    await registrar(knot, "http://127.0.0.1:8081/smp/").register(NORWAY)
    location = await SmlLookup(SML_ZONE, knot.address).locate(NORWAY)
    assert location.url == "http://127.0.0.1:8081/smp"
    assert location.dns_name.startswith("7I2243UOLQ5QZB6JXFVI6YEI4IQ7SFIPKV55HTZFNR6S54Y6YUFA.")


async def test_lookup_is_case_insensitive_in_the_participant_value(knot: KnotDns) -> None:
    participant = ParticipantId.parse("9944:NL004495445B01")
    await registrar(knot).register(participant)
    location = await SmlLookup(SML_ZONE, knot.address).locate(ParticipantId.parse("9944:nl004495445b01"))
    assert location.url == "http://127.0.0.1:8081/smp"


async def test_unregistered_participant_is_not_registered(knot: KnotDns) -> None:
    reg = registrar(knot)
    await reg.register(SWEDEN)
    await reg.unregister(SWEDEN)
    with pytest.raises(NotRegistered, match="not registered"):
        await SmlLookup(SML_ZONE, knot.address).locate(SWEDEN)


async def test_update_with_a_wrong_key_is_refused(knot: KnotDns) -> None:
    wrong = LocalSml(SML_ZONE, knot.address, "http://x", key_name=knot.key_name, key_secret="AAAA" * 11)
    with pytest.raises(RegistrationError):
        await wrong.register(ParticipantId.parse("0088:7300010000001"))


async def test_unreachable_dns_server_is_a_retryable_failure() -> None:
    lookup = SmlLookup(SML_ZONE, "127.0.0.1:9", timeout=0.5)
    with pytest.raises(DnsFailure) as info:
        await lookup.locate(NORWAY)
    assert info.value.retryable


async def test_naptr_without_meta_smp_service_means_not_registered(knot: KnotDns) -> None:
    participant = ParticipantId.parse("0208:0566988259")
    await _raw_update(knot, participant, '100 10 "U" "Meta:Other" "!^.*$!https://x.example!" .')
    with pytest.raises(NotRegistered, match="Meta:SMP"):
        await SmlLookup(SML_ZONE, knot.address).locate(participant)


async def test_broken_regexp_is_a_malformed_record(knot: KnotDns) -> None:
    participant = ParticipantId.parse("0106:12345678")
    await _raw_update(knot, participant, '100 10 "U" "Meta:SMP" "!^.*$" .')
    with pytest.raises(MalformedRecord):
        await SmlLookup(SML_ZONE, knot.address).locate(participant)


async def test_lowest_order_record_wins_and_service_case_is_ignored(knot: KnotDns) -> None:
    participant = ParticipantId.parse("0184:29876543")  # used by no other test: the zone is shared
    keyring = dns.tsigkeyring.from_text({knot.key_name: ("hmac-sha256", knot.secret)})
    update = dns.update.UpdateMessage(
        SML_ZONE + ".",
        keyring=keyring,
        keyname=dns.name.from_text(knot.key_name),
        keyalgorithm=dns.tsig.HMAC_SHA256,
    )
    name = dns_name(participant, SML_ZONE) + "."
    update.delete(name, "NAPTR")
    update.add(name, 60, "NAPTR", '200 10 "U" "Meta:SMP" "!^.*$!http://second.example!" .')
    update.add(name, 60, "NAPTR", '100 10 "u" "meta:smp" "!^.*$!http://first.example!" .')
    host, port = knot.address.split(":")
    await dns.asyncquery.tcp(update, host, port=int(port), timeout=3)
    assert (await SmlLookup(SML_ZONE, knot.address).locate(participant)).url == "http://first.example"
