"""`peppol-gateway dev-pki` creates the development PKI once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_cli_creates_the_pki_once_and_keeps_it_with_if_missing(tmp_path: Path) -> None:
    target = tmp_path / "pki"
    cmd = [sys.executable, "-m", "gateway.cli", "dev-pki", "--dir", str(target)]
    first = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    before = (target / "ap1.cert.pem").read_bytes()
    again = subprocess.run([*cmd, "--if-missing"], capture_output=True, text=True, check=False)
    assert again.returncode == 0
    assert (target / "ap1.cert.pem").read_bytes() == before
    refused = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert "--force" in refused.stderr
