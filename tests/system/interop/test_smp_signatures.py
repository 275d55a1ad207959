"""Every XML-DSig shape real SMPs send verifies; tampered and wrapped copies are refused.

Each answer here is signed by the ``xmlsec1`` tool from a template (as .NET, phoss-SMP and
xmlsec1 templates write them: the ``ds:`` prefix or the default namespace, inclusive or exclusive
C14N with or without comments, RSA-SHA256 or RSA-SHA512, base64 wrapped at 64 columns) inside an
SMP document that declares other prefixes (``smp``, ``ids``, ``wsa``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from gateway.dev.pki import DevPki
from smp import (
    DocumentTypeId,
    Endpoint,
    ParticipantId,
    ProcessEntry,
    ServiceMetadata,
    SignatureInvalid,
    build_signed_service_metadata,
    profile_services,
    verify_signed_service_metadata,
)

pytestmark = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 not installed")

DS = "http://www.w3.org/2000/09/xmldsig#"
SMP = "http://busdox.org/serviceMetadata/publishing/1.0/"
INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXCLUSIVE = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
COMMENTS = "#WithComments"
RSA = {
    "sha256": ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256"),
    "sha512": ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha512", "http://www.w3.org/2001/04/xmlenc#sha512"),
}
INVOICE = profile_services("INVOICE_AND_CREDIT_NOTE")[0]
NORWAY = ParticipantId.parse("0192:991825827")
URL = "https://ap.example/as4"


def unsigned_answer(pki: DevPki) -> etree._Element:
    endpoint = Endpoint(url=URL, certificate=pki.access_points["ap1"].cert, description="AS4")
    metadata = ServiceMetadata(NORWAY, INVOICE.document_type, (ProcessEntry(INVOICE.process, (endpoint,)),))
    root = etree.fromstring(build_signed_service_metadata(metadata, pki.smp.key, pki.smp.cert))
    root.remove(root.find(f"{{{DS}}}Signature"))
    return root


def template(prefix: str, c14n: str, reference_c14n: str | None, hash_name: str) -> etree._Element:
    """A signature template as another implementation writes it (``prefix`` "" = default namespace)."""
    p = f"{prefix}:" if prefix else ""
    declaration = f'xmlns:{prefix}="{DS}"' if prefix else f'xmlns="{DS}"'
    signature_method, digest_method = RSA[hash_name]
    extra = f'<{p}Transform Algorithm="{reference_c14n}"/>' if reference_c14n else ""
    comment = "<!-- signed by xmlsec1 -->" if c14n.endswith("WithComments") else ""
    return etree.fromstring(
        f"<{p}Signature {declaration}><{p}SignedInfo>{comment}"
        f'<{p}CanonicalizationMethod Algorithm="{c14n}"/>'
        f'<{p}SignatureMethod Algorithm="{signature_method}"/>'
        f'<{p}Reference URI=""><{p}Transforms>'
        f'<{p}Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>{extra}'
        f'</{p}Transforms><{p}DigestMethod Algorithm="{digest_method}"/><{p}DigestValue/></{p}Reference>'
        f"</{p}SignedInfo><{p}SignatureValue/>"
        f"<{p}KeyInfo><{p}X509Data><{p}X509Certificate/></{p}X509Data></{p}KeyInfo></{p}Signature>".encode()
    )


def xmlsec1_sign(pki: DevPki, document: etree._Element, tmp_path: Path) -> bytes:
    (tmp_path / "tmpl.xml").write_bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8"))
    key_and_cert = f"{pki.directory / 'smp.key.pem'},{pki.directory / 'smp.cert.pem'}"
    result = subprocess.run(
        ["xmlsec1", "--sign", "--privkey-pem", key_and_cert, "--output", str(tmp_path / "signed.xml"),
         str(tmp_path / "tmpl.xml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return (tmp_path / "signed.xml").read_bytes()


def signed_answer(
    pki: DevPki, tmp_path: Path, prefix: str = "", c14n: str = INCLUSIVE, reference_c14n: str | None = None,
    hash_name: str = "sha256",
) -> bytes:  # fmt: skip
    root = unsigned_answer(pki)
    root.append(template(prefix, c14n, reference_c14n, hash_name))
    return xmlsec1_sign(pki, root, tmp_path)


def verify(pki: DevPki, data: bytes) -> ServiceMetadata:
    verified = verify_signed_service_metadata(data, [pki.smp_ca.cert])
    assert verified.signer == pki.smp.cert
    assert isinstance(verified.content, ServiceMetadata)
    return verified.content


SHAPES = [
    pytest.param(prefix, c14n, ref, hash_name, id=f"{prefix or 'default'}-{label}-{ref_label}-{hash_name}")
    for prefix in ("ds", "")
    for label, c14n in (
        ("c14n", INCLUSIVE), ("c14n-comments", INCLUSIVE + COMMENTS), ("c14n11", C14N_11),
        ("exc", EXCLUSIVE), ("exc-comments", EXCLUSIVE + "WithComments"),
    )
    for ref_label, ref in (("enveloped", None), ("enveloped+c14n", c14n))
    for hash_name in ("sha256", "sha512")
]  # fmt: skip


@pytest.mark.parametrize(("prefix", "c14n", "reference_c14n", "hash_name"), SHAPES)
def test_signature_shape_signed_by_xmlsec1_verifies(
    dev_pki: DevPki, tmp_path: Path, prefix: str, c14n: str, reference_c14n: str | None, hash_name: str
) -> None:
    data = signed_answer(dev_pki, tmp_path, prefix, c14n, reference_c14n, hash_name)
    root = etree.fromstring(data)
    assert root.nsmap.keys() >= {"smp", "ids", "wsa"}
    signature = root.find(f"{{{DS}}}Signature")
    assert signature is not None and signature.prefix == (prefix or None)
    assert "\n" in (signature.findtext(f"{{{DS}}}SignatureValue") or "").strip()  # wrapped base64
    assert "\n" in (signature.findtext(f".//{{{DS}}}X509Certificate") or "").strip()
    content = verify(dev_pki, data)
    assert content.participant == NORWAY
    assert content.processes[0].endpoints[0].url == URL


@pytest.mark.parametrize("prefix", ["ds", ""])
@pytest.mark.parametrize("c14n", [INCLUSIVE, EXCLUSIVE])
def test_one_changed_byte_in_the_signed_content_is_refused(
    dev_pki: DevPki, tmp_path: Path, prefix: str, c14n: str
) -> None:
    data = signed_answer(dev_pki, tmp_path, prefix, c14n)
    tampered = data.replace(b"https://ap.example/as4", b"https://ap.examplf/as4", 1)
    assert tampered != data
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify(dev_pki, tampered)


def test_changed_signed_info_is_refused(dev_pki: DevPki, tmp_path: Path) -> None:
    data = signed_answer(dev_pki, tmp_path)
    root = etree.fromstring(data)
    digest = root.find(f".//{{{DS}}}DigestValue")
    assert digest is not None and digest.text
    digest.text = ("B" if digest.text[0] != "B" else "C") + digest.text[1:]
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify(dev_pki, etree.tostring(root))


def test_signature_moved_onto_other_content_is_refused(dev_pki: DevPki, tmp_path: Path) -> None:
    """Wrapping: keep the valid signature, replace the content it signed."""
    data = signed_answer(dev_pki, tmp_path)
    root = etree.fromstring(data)
    address = root.find(".//{http://www.w3.org/2005/08/addressing}Address")
    assert address is not None
    original = root.find(f"{{{SMP}}}ServiceMetadata")
    assert original is not None
    evil = etree.fromstring(etree.tostring(original))
    evil_address = evil.find(".//{http://www.w3.org/2005/08/addressing}Address")
    assert evil_address is not None
    evil_address.text = "https://attacker.example/as4"
    root.replace(original, evil)
    # the signed element travels along inside the signature, where nothing should look
    signature = root.find(f"{{{DS}}}Signature")
    assert signature is not None
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    obj.append(original)
    with pytest.raises(SignatureInvalid):
        verify(dev_pki, etree.tostring(root))


def test_signed_answer_wrapped_in_another_document_is_refused(dev_pki: DevPki, tmp_path: Path) -> None:
    """Wrapping: the whole signed answer moved under a new root that carries other content."""
    signed = etree.fromstring(signed_answer(dev_pki, tmp_path))
    wrapper = etree.Element(f"{{{SMP}}}SignedServiceMetadata", nsmap={"smp": SMP})
    evil = etree.fromstring(etree.tostring(signed.find(f"{{{SMP}}}ServiceMetadata")))
    wrapper.append(evil)
    wrapper.append(signed)  # the valid signature, one level down
    with pytest.raises(SignatureInvalid, match="child of the root"):
        verify(dev_pki, etree.tostring(wrapper))


def test_a_comment_planted_in_a_signed_text_does_not_shorten_what_is_read(dev_pki: DevPki, tmp_path: Path) -> None:
    """``URI=""`` does not sign comments: one inserted into the address still verifies, and the
    address read afterwards must be the whole signed one, not the text before the comment."""
    data = signed_answer(dev_pki, tmp_path)
    planted = data.replace(b"https://ap.example/as4", b"https://ap.example<!-- -->/as4", 1)
    assert planted != data
    assert verify(dev_pki, planted).processes[0].endpoints[0].url == URL


def test_reference_to_part_of_the_document_is_refused(dev_pki: DevPki, tmp_path: Path) -> None:
    data = signed_answer(dev_pki, tmp_path, prefix="ds").replace(b'URI=""', b'URI="#x"', 1)
    with pytest.raises(SignatureInvalid, match='URI=""'):
        verify(dev_pki, data)


def test_weak_algorithms_are_refused(dev_pki: DevPki, tmp_path: Path) -> None:
    root = unsigned_answer(dev_pki)
    sig = template("ds", INCLUSIVE, None, "sha256")
    method = sig.find(f".//{{{DS}}}SignatureMethod")
    assert method is not None
    method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    digest = sig.find(f".//{{{DS}}}DigestMethod")
    assert digest is not None
    digest.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")
    root.append(sig)
    with pytest.raises(SignatureInvalid, match="signature method"):
        verify(dev_pki, xmlsec1_sign(dev_pki, root, tmp_path))


def test_other_key_than_the_carried_certificate_is_refused(dev_pki: DevPki, tmp_path: Path) -> None:
    """Signed with an access point key while carrying the SMP certificate: the carried (and
    trusted) certificate's key is the only one used."""
    root = unsigned_answer(dev_pki)
    root.append(template("", INCLUSIVE, None, "sha256"))
    (tmp_path / "tmpl.xml").write_bytes(etree.tostring(root))
    ap = dev_pki.directory / "ap1"
    subprocess.run(
        ["xmlsec1", "--sign", "--privkey-pem", f"{ap}.key.pem,{ap}.cert.pem", "--output",
         str(tmp_path / "signed.xml"), str(tmp_path / "tmpl.xml")],
        capture_output=True, check=True,
    )  # fmt: skip
    signed = etree.fromstring((tmp_path / "signed.xml").read_bytes())
    cert_el = signed.find(f".//{{{DS}}}X509Certificate")
    assert cert_el is not None
    smp_pem = (dev_pki.directory / "smp.cert.pem").read_text()
    cert_el.text = "".join(line for line in smp_pem.splitlines() if "CERTIFICATE" not in line)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify(dev_pki, etree.tostring(signed))


def test_our_own_signature_still_verifies(dev_pki: DevPki) -> None:
    endpoint = Endpoint(url=URL, certificate=dev_pki.access_points["ap1"].cert)
    doc = DocumentTypeId.parse(INVOICE.document_type.uri)
    metadata = ServiceMetadata(NORWAY, doc, (ProcessEntry(INVOICE.process, (endpoint,)),))
    assert verify(dev_pki, build_signed_service_metadata(metadata, dev_pki.smp.key, dev_pki.smp.cert)) == metadata
