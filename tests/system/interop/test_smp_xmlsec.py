"""xmlsec1 as an independent signer and verifier of SMP answers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from gateway.dev.pki import DevPki
from smp import (
    ParticipantId,
    ServiceMetadata,
    build_signed_service_metadata,
    verify_signed_service_metadata,
)
from tests.support.smp import metadata

NORWAY = ParticipantId.parse("0192:991825827")

needs_xmlsec1 = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 not installed")


@needs_xmlsec1
def test_our_smp_signature_verifies_with_xmlsec1(dev_pki: DevPki, tmp_path: Path) -> None:
    signed = build_signed_service_metadata(metadata(dev_pki, NORWAY), dev_pki.smp.key, dev_pki.smp.cert)
    (tmp_path / "ssm.xml").write_bytes(signed)
    result = subprocess.run(
        ["xmlsec1", "--verify", "--pubkey-cert-pem", str(dev_pki.directory / "smp.cert.pem"), str(tmp_path / "ssm.xml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@needs_xmlsec1
def test_smp_answer_signed_by_xmlsec1_is_verified_by_us(dev_pki: DevPki, tmp_path: Path) -> None:
    unsigned = build_signed_service_metadata(metadata(dev_pki, NORWAY), dev_pki.smp.key, dev_pki.smp.cert)
    root = etree.fromstring(unsigned)
    root.remove(root.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    template = etree.fromstring(
        b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
        b'<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
        b'<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        b'<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        b'</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>'
        b"</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"
    )
    root.append(template)
    (tmp_path / "tmpl.xml").write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    key_and_cert = f"{dev_pki.directory / 'smp.key.pem'},{dev_pki.directory / 'smp.cert.pem'}"
    result = subprocess.run(
        ["xmlsec1", "--sign", "--privkey-pem", key_and_cert, "--output", str(tmp_path / "signed.xml"), str(tmp_path / "tmpl.xml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verified = verify_signed_service_metadata((tmp_path / "signed.xml").read_bytes(), [dev_pki.smp_ca.cert])
    assert isinstance(verified.content, ServiceMetadata)
    assert verified.content.participant == NORWAY and verified.signer == dev_pki.smp.cert
