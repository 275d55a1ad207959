"""Configuration: defaults, the TOML file, the environment, and one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.config import ConfigError, load_settings
from tests.support.paths import ROOT


def test_defaults_listen_on_loopback_port_8080_with_embedded_database() -> None:
    settings = load_settings(environ={})
    assert settings.listen_host == "127.0.0.1"
    assert settings.listen_port == 8080
    assert settings.database_url is None


def test_toml_file_sets_values(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[http]\nport = 9000\n[sml]\nzone = "production"\n[ap]\ntrust = ["a.pem", "b.pem"]\n')
    settings = load_settings(config, environ={})
    assert settings.listen_port == 9000
    assert settings.sml_zone == "production"
    assert [str(p) for p in settings.ap_trust] == ["a.pem", "b.pem"]


def test_environment_overrides_toml(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("[http]\nport = 9000\n")
    settings = load_settings(config, environ={"PEPPOL_HTTP_PORT": "9100"})
    assert settings.listen_port == 9100


def test_database_url_is_read_from_the_conventional_variable() -> None:
    settings = load_settings(environ={"DATABASE_URL": "postgresql://u:p@db:5432/gw"})
    assert settings.database_url == "postgresql://u:p@db:5432/gw"


def test_invalid_port_names_the_environment_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"PEPPOL_HTTP_PORT": "eighty"})
    assert info.value.setting == "PEPPOL_HTTP_PORT"
    assert "integer" in info.value.problem


def test_invalid_toml_value_names_the_toml_key(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[log]\nformat = "xml"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    assert info.value.setting == "log.format"


def test_unknown_setting_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("[http]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"http\.prot: unknown setting"):
        load_settings(config, environ={})


def test_malformed_toml_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("[http\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config, environ={})


def test_database_url_must_be_postgresql() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings(environ={"DATABASE_URL": "mysql://x"})


def test_pool_min_above_max_is_rejected() -> None:
    with pytest.raises(ConfigError, match="pool_min"):
        load_settings(environ={"PEPPOL_DATABASE_POOL_MIN": "5", "PEPPOL_DATABASE_POOL_MAX": "2"})


def test_example_configuration_in_deploy_is_valid() -> None:
    example = ROOT / "deploy" / "peppol-gateway.example.toml"
    settings = load_settings(example, environ={})
    assert settings.log_format == "json"


def test_a_setting_can_come_from_a_mounted_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://gw:s3cret@db:5432/peppol\n")
    settings = load_settings(environ={"PEPPOL_DATABASE_URL_FILE": str(secret)})
    assert settings.database_url == "postgresql://gw:s3cret@db:5432/peppol"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"PEPPOL_DATABASE_URL_FILE": str(tmp_path / "missing")})
    assert caught.value.setting == "PEPPOL_DATABASE_URL_FILE"
