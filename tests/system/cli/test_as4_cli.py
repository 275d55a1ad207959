"""`peppol-gateway as4 build` and `as4 inspect`: JSON reports and exit codes, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import as4
from gateway.dev.pki import DevPki
from tests.support.as4 import sbd


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, check=False)


def _files(pki: DevPki, stem: str) -> list[str]:
    return [
        "--key",
        str(pki.directory / f"{stem}.key.pem"),
        "--cert",
        str(pki.directory / f"{stem}.cert.pem"),
    ]


def _build(pki: DevPki, tmp_path: Path) -> Path:
    (tmp_path / "sbd.xml").write_bytes(sbd())
    out = tmp_path / "message.bin"
    result = cli(
        "as4", "build", "--payload", str(tmp_path / "sbd.xml"), *_files(pki, "ap1"),
        "--receiver-cert", str(pki.directory / "ap2.cert.pem"), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["header"]["from"] == "POP000001"
    return out


def test_built_message_inspects_clean_with_the_receivers_key(dev_pki: DevPki, tmp_path: Path) -> None:
    message = _build(dev_pki, tmp_path)
    result = cli(
        "as4", "inspect", str(message), *_files(dev_pki, "ap2"),
        "--trust", str(dev_pki.directory / "ap-ca.cert.pem"),
        "--payload-out", str(tmp_path / "payload.xml"), "--receipt-out", str(tmp_path / "receipt.xml"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["trusted"] and report["decryption"] == "ok"
    assert [r["valid"] for r in report["signature"]["references"]] == [True, True, True]
    assert report["payload"]["sbdh"]["receiver"] == "0192:991825827"
    written = (tmp_path / "payload.xml").read_bytes()
    assert len(written) == report["payload"]["size"] and b"<StandardBusinessDocument" in written
    receipt = as4.parse_signal((tmp_path / "receipt.xml").read_bytes(), as4.SOAP_CONTENT_TYPE)
    assert receipt.ref_to_message_id == report["header"]["message_id"]


def test_inspect_without_a_key_checks_everything_but_the_encrypted_part(dev_pki: DevPki, tmp_path: Path) -> None:
    result = cli("as4", "inspect", str(_build(dev_pki, tmp_path)))
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert [r["valid"] for r in report["signature"]["references"]] == [True, True, None]
    assert report["decryption"].startswith("not attempted")


def test_inspect_of_a_tampered_message_exits_1_with_the_ebms_code(dev_pki: DevPki, tmp_path: Path) -> None:
    message = _build(dev_pki, tmp_path)
    message.write_bytes(message.read_bytes().replace(b"0192:991825827", b"0192:974760673", 1))
    result = cli("as4", "inspect", str(message), *_files(dev_pki, "ap2"))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["error"]["code"] == "EBMS:0101"
    assert "Traceback" not in result.stderr


def test_inspect_with_the_wrong_key_reports_failed_decryption(dev_pki: DevPki, tmp_path: Path) -> None:
    result = cli("as4", "inspect", str(_build(dev_pki, tmp_path)), *_files(dev_pki, "ap1"))
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "EBMS:0102"


def test_inspect_of_garbage_reports_a_mime_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a message")
    result = cli("as4", "inspect", str(junk), "--content-type", "multipart/related; boundary=zz")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "EBMS:0007"


def test_missing_file_is_one_line_on_stderr(tmp_path: Path) -> None:
    result = cli("as4", "inspect", str(tmp_path / "nope.bin"))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_build_refuses_a_payload_without_sbdh(dev_pki: DevPki, tmp_path: Path) -> None:
    (tmp_path / "bare.xml").write_bytes(b"<Invoice/>")
    result = cli(
        "as4", "build", "--payload", str(tmp_path / "bare.xml"), *_files(dev_pki, "ap1"),
        "--receiver-cert", str(dev_pki.directory / "ap2.cert.pem"), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "not a valid Peppol SBD" in result.stderr
