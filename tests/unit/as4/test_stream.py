"""The streaming writer and reader agree with the whole-message build and parse, whatever the
chunking, and judge a damaged message the same way."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

import as4
from gateway.dev.pki import DevPki

PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


def _header() -> as4.UserMessageHeader:
    return as4.UserMessageHeader(
        message_id=as4.new_message_id("t"), conversation_id="c", timestamp=datetime.now(UTC),
        from_party="POP000001", to_party="POP000002", service=PROCESS, action="busdox-docid-qns::x",
        original_sender="0007:2120000787", final_recipient="0192:991825827",
    )  # fmt: skip


def _feed(reader: as4.MessageReader, body: bytes, rng: random.Random) -> bytes:
    out: list[bytes] = []
    pos = 0
    while pos < len(body):
        n = rng.choice([1, 7, 100, 4096, 70_000, 1 << 20])
        out += reader.feed(body[pos : pos + n])
        pos += n
    _, rest = reader.finish()
    return b"".join(out + rest)


@pytest.mark.parametrize("compress", [True, False])
def test_writer_and_reader_agree_with_build_and_parse(dev_pki: DevPki, compress: bool) -> None:
    a, b = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    rng = random.Random(7)
    payload = b"<x>" + bytes(rng.randrange(256) for _ in range(300_000)).hex().encode() + b"</x>"
    writer = as4.MessageWriter(
        _header(), signing_key=a.key, signing_cert=a.cert, receiver_cert=b.cert, compress=compress
    )
    attachment = b"".join(writer.feed(payload[i : i + 65_536]) for i in range(0, len(payload), 65_536))
    last, frame = writer.finish()
    attachment += last
    assert len(attachment) == frame.attachment_size
    body = frame.prefix + attachment + frame.suffix
    assert len(body) == frame.size
    batch = as4.parse_user_message(body, frame.content_type, our_key=b.key, our_cert=b.cert)
    assert batch.payload == payload
    for _ in range(3):
        reader = as4.MessageReader(frame.content_type, our_key=b.key, our_cert=b.cert)
        assert _feed(reader, body, rng) == payload
    built = as4.build_user_message(_header(), payload, signing_key=a.key, signing_cert=a.cert, receiver_cert=b.cert)
    reader = as4.MessageReader(built.content_type, our_key=b.key, our_cert=b.cert)
    assert _feed(reader, bytes(built.body), rng) == payload


def test_damage_is_judged_as_the_whole_message_parse_judges_it(dev_pki: DevPki) -> None:
    a, b = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    built = as4.build_user_message(_header(), b"<x>" + b"y" * 100_000 + b"</x>", signing_key=a.key,
                                   signing_cert=a.cert, receiver_cert=b.cert)  # fmt: skip
    tampered = bytearray(built.body)
    tampered[-100] ^= 1
    for body, error in ((bytes(tampered), as4.FailedDecryption), (bytes(built.body[:-60]), as4.MimeInconsistency)):
        with pytest.raises(error):
            reader = as4.MessageReader(built.content_type, our_key=b.key, our_cert=b.cert)
            reader.feed(body)
            reader.finish()


def test_gunzip_limit_applies_to_streamed_payloads(dev_pki: DevPki) -> None:
    a, b = dev_pki.access_points["ap1"], dev_pki.access_points["ap2"]
    built = as4.build_user_message(_header(), b"<x>" + b"0" * 2_000_000 + b"</x>", signing_key=a.key,
                                   signing_cert=a.cert, receiver_cert=b.cert)  # fmt: skip
    reader = as4.MessageReader(built.content_type, our_key=b.key, our_cert=b.cert, max_payload_bytes=100_000)
    reader.feed(bytes(built.body))
    with pytest.raises(as4.DecompressionFailure):
        reader.finish()
