"""Migration files are named NNNN_name.sql and each version appears once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.migrate import MigrationError, load_migrations


def test_misnamed_migration_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_duplicate_versions_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="version 0001"):
        load_migrations(tmp_path)
