"""xmlsec1 (libxmlsec1, an independent XML signature implementation) on the receipts other access
points sent (``../shared/corpora/receipts``): it must agree with ``as4.parse_signal`` on every one,
three verify and ``dataport1.as4in`` fails its Messaging digest (tests/unit/as4/test_external_receipts.py
says why). The key is the certificate in each message's BinarySecurityToken; its chain is not
checked (the Peppol G2 test CA is not in the corpus)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import as4
from tests.support.receipt_corpus import read_response

pytestmark = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 not installed")

VALID = ["dataport1-mustunderstand.as4in", "governikus.as4in", "helger.as4in"]


def _xmlsec1_verify(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], bool]:
    """xmlsec1's verdict and ours on one captured response."""
    response = read_response(name)
    document, cert = tmp_path / "receipt.xml", tmp_path / "signer.pem"
    document.write_bytes(response.body)
    cert.write_bytes(response.token_certificate().public_bytes(Encoding.PEM))
    result = subprocess.run(
        [
            "xmlsec1", "--verify", "--pubkey-cert-pem", str(cert),
            "--id-attr:Id", "http://www.w3.org/2003/05/soap-envelope:Body",
            "--id-attr:Id", "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/:Messaging",
            str(document),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        as4.parse_signal(response.body, response.content_type)
        ours = True
    except as4.InvalidReceipt:
        ours = False
    return result, ours


@pytest.mark.parametrize("name", VALID)
def test_xmlsec1_and_we_verify_the_real_receipt(name: str, tmp_path: Path) -> None:
    result, ours = _xmlsec1_verify(name, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 2/2" in result.stderr
    assert ours


def test_xmlsec1_and_we_refuse_dataport1_for_its_messaging_digest(tmp_path: Path) -> None:
    result, ours = _xmlsec1_verify("dataport1.as4in", tmp_path)
    assert result.returncode != 0
    assert "data and digest do not match" in result.stderr
    # xmlsec1 stops at the first failed reference: the first in SignedInfo is the Messaging header
    assert "SignedInfo References (ok/all): 0/1" in result.stderr
    assert not ours
