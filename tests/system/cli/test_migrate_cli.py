"""`peppol-gateway migrate` reports a failure in one line."""

from __future__ import annotations

from pathlib import Path


def test_migration_cli_reports_failure_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "migrate"],
        env={"DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot connect to PostgreSQL" in result.stderr
