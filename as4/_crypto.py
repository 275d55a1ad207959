"""Compression, AES-GCM attachment encryption and RSA-OAEP key transport, in chunks."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from as4._errors import DecompressionFailure, FailedDecryption

__all__ = [
    "CHUNK",
    "Gzipped",
    "gcm_decrypt",
    "gcm_encrypt",
    "gunzip",
    "gzip_bytes",
    "oaep_unwrap",
    "oaep_wrap",
]

CHUNK = 1 << 20
IV_LEN = 12
TAG_LEN = 16


@dataclass(frozen=True)
class Gzipped:
    data: bytearray
    sha256: bytes


def gzip_bytes(payload: bytes | memoryview, level: int = 6) -> Gzipped:
    """gzip (RFC 1952) in chunks, hashing the output as it is produced."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    view = memoryview(payload)
    out = bytearray()
    digest = hashlib.sha256()
    for i in range(0, len(view), CHUNK):
        chunk = comp.compress(view[i : i + CHUNK])
        if chunk:
            out += chunk
            digest.update(chunk)
    tail = comp.flush()
    out += tail
    digest.update(tail)
    return Gzipped(out, digest.digest())


def gunzip(data: bytes | bytearray | memoryview, limit: int, sink: Callable[[bytes], object] | None = None) -> int:
    """Decompress gzip data, refusing output beyond ``limit`` bytes (gzip bombs).

    Output goes to ``sink`` chunk by chunk; returns the decompressed size.
    """
    d = zlib.decompressobj(31)
    view = memoryview(data)
    total = 0
    try:
        for i in range(0, len(view), CHUNK):
            buf = view[i : i + CHUNK]
            while buf:
                out = d.decompress(buf, CHUNK)
                total += len(out)
                if total > limit:
                    raise DecompressionFailure(f"decompressed payload exceeds {limit} bytes")
                if out and sink:
                    sink(out)
                buf = memoryview(d.unconsumed_tail)
                if d.eof:
                    break
            if d.eof:
                break
        while not d.eof:
            out = d.decompress(b"", CHUNK)
            if not out:
                break
            total += len(out)
            if total > limit:
                raise DecompressionFailure(f"decompressed payload exceeds {limit} bytes")
            if sink:
                sink(out)
    except zlib.error as exc:
        raise DecompressionFailure(f"payload is not valid gzip: {exc}") from None
    if not d.eof:
        raise DecompressionFailure("payload gzip stream is truncated")
    return total


def gcm_encrypt(key: bytes, plaintext: bytes | bytearray | memoryview) -> bytes:
    """``IV ‖ ciphertext ‖ tag`` as XML Encryption 1.1 lays out AES-GCM."""
    out = bytearray(gcm_size(len(plaintext)))
    gcm_encrypt_into(key, plaintext, memoryview(out))
    return bytes(out)


def gcm_size(plaintext_len: int) -> int:
    return IV_LEN + plaintext_len + TAG_LEN


def gcm_encrypt_into(key: bytes, plaintext: bytes | bytearray | memoryview, out: memoryview) -> None:
    """Encrypt into a buffer of exactly :func:`gcm_size` bytes, chunk by chunk, without copies."""
    iv = os.urandom(IV_LEN)
    out[:IV_LEN] = iv
    if len(plaintext) <= CHUNK:
        # one call for the usual small payload: AESGCM returns ciphertext ‖ tag
        sealed = AESGCM(key).encrypt(iv, plaintext, None)
        if IV_LEN + len(sealed) != len(out):
            raise ValueError("output buffer has the wrong size")
        out[IV_LEN:] = sealed
        return
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    view = memoryview(plaintext)
    pos = IV_LEN
    for i in range(0, len(view), CHUNK):
        chunk = view[i : i + CHUNK]
        # update_into wants room for one extra block beyond the input
        scratch = bytearray(len(chunk) + 15)
        n = enc.update_into(chunk, scratch)
        out[pos : pos + n] = memoryview(scratch)[:n]
        pos += n
    enc.finalize()
    out[pos : pos + TAG_LEN] = enc.tag
    if pos + TAG_LEN != len(out):
        raise ValueError("output buffer has the wrong size")


def gcm_decrypt(key: bytes, data: bytes | memoryview) -> bytes | bytearray:
    if len(data) < IV_LEN + TAG_LEN:
        raise FailedDecryption("encrypted attachment is too short for AES-GCM")
    view = memoryview(data)
    if len(view) <= CHUNK:
        try:
            return AESGCM(key).decrypt(view[:IV_LEN], view[IV_LEN:], None)
        except (InvalidTag, ValueError):
            raise FailedDecryption("attachment failed AES-GCM authentication") from None
    iv, tag = bytes(view[:IV_LEN]), bytes(view[-TAG_LEN:])
    body = view[IV_LEN:-TAG_LEN]
    out = bytearray(len(body) + 15)
    target = memoryview(out)
    pos = 0
    try:
        dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag)).decryptor()
        for i in range(0, len(body), CHUNK):
            pos += dec.update_into(body[i : i + CHUNK], target[pos : pos + CHUNK + 15])
        dec.finalize()
    except (InvalidTag, ValueError):
        raise FailedDecryption("attachment failed AES-GCM authentication") from None
    finally:
        target.release()
    del out[pos:]
    return out


_OAEP_SHA256 = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def oaep_wrap(public_key: rsa.RSAPublicKey, key: bytes) -> bytes:
    return public_key.encrypt(key, _OAEP_SHA256)


def oaep_unwrap(
    private_key: rsa.RSAPrivateKey,
    wrapped: bytes,
    digest: hashes.HashAlgorithm | None = None,
    mgf_digest: hashes.HashAlgorithm | None = None,
) -> bytes:
    pad = (
        _OAEP_SHA256
        if digest is None and mgf_digest is None
        else padding.OAEP(
            mgf=padding.MGF1(algorithm=mgf_digest or hashes.SHA1()),  # noqa: S303
            algorithm=digest or hashes.SHA1(),  # noqa: S303
            label=None,
        )
    )
    try:
        return private_key.decrypt(wrapped, pad)
    except ValueError:
        raise FailedDecryption("the symmetric key could not be unwrapped with our key") from None
