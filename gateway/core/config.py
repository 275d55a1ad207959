"""Typed settings, loaded once at start-up from an optional TOML file and the environment.

Every setting has one name in the TOML file (``section.key``) and one environment variable
(``PEPPOL_SECTION_KEY``; ``DATABASE_URL`` is also read as-is). The environment wins over the
file; ``PEPPOL_SECTION_KEY_FILE`` names a file holding the value (a mounted secret). A bad
value stops start-up with a :class:`ConfigError` naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.errors import CoreError
from gateway.core.redact import MASK, mask_url_credentials

__all__ = ["ConfigError", "Settings", "load_settings"]


class ConfigError(CoreError):
    """A configuration value is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def _env_name(section: str, key: str) -> str:
    return f"PEPPOL_{section}_{key}".upper()


def _hide(value: str) -> str:
    return MASK


def _hide_tsig_secret(value: str) -> str:
    name, _, _ = value.partition(":")
    return f"{name}:{MASK}"


def _secret(mask: Callable[[str], str] = _hide) -> Any:
    """A setting that holds a credential: printed through ``mask``, never as it is."""
    return dataclasses.field(default=None, metadata={"mask": mask})


def _shown(field: dataclasses.Field[Any], value: Any) -> Any:
    """A setting's value as printed: a secret masked, the password of any URL masked."""
    if isinstance(value, str):
        mask: Callable[[str], str] | None = field.metadata.get("mask")
        return mask(value) if mask is not None else mask_url_credentials(value)
    return value


@dataclass(frozen=True)
class Settings:
    """All configuration of one gateway process. Printing it (repr, str, a log field, a
    traceback) masks every secret setting and every password in a URL."""

    def __repr__(self) -> str:
        shown = (f"{f.name}={_shown(f, getattr(self, f.name))!r}" for f in dataclasses.fields(self) if f.repr)
        return f"{type(self).__name__}({', '.join(shown)})"

    # [database]
    database_url: str | None = _secret(mask_url_credentials)
    data_dir: Path = Path(".data")
    database_pool_min: int = 1
    database_pool_max: int = 10
    # [http]
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    public_url: str | None = None
    shutdown_timeout: float = 10.0
    rate_limit: int = 600
    reuse_port: bool = False  # several processes on one host share the port (SO_REUSEPORT)
    # [log]
    log_format: str = "console"
    log_level: str = "info"
    # [ap]
    ap_key: Path = Path("certs-dev/ap1.key.pem")
    ap_cert: Path = Path("certs-dev/ap1.cert.pem")
    # empty: the default of sml.zone (the shipped Peppol G3 CAs for production and test, the
    # development PKI's CA otherwise); see gateway.security.anchors
    ap_trust: tuple[Path, ...] = ()
    revocation: str = "soft-fail"
    reload_interval: float = 60.0
    # [smp]
    smp_url: str | None = None
    smp_key: Path = Path("certs-dev/smp.key.pem")
    smp_cert: Path = Path("certs-dev/smp.cert.pem")
    smp_trust: tuple[Path, ...] = ()  # empty: the default of sml.zone, as for ap_trust
    # [sml]
    sml_zone: str = "test"
    sml_dns: str | None = None
    sml_update_server: str | None = None
    sml_update_key: str | None = _secret(_hide_tsig_secret)
    # [sml] the Peppol SML's management interface (default per Peppol zone, required for any
    # other zone without update_server), the CA file for its TLS certificate (default: the
    # system store); [smp] id: the SMP id OpenPeppol assigned to us
    sml_management_url: str | None = None
    sml_management_trust: Path | None = None
    smp_id: str | None = None
    # [workers]
    outbound_workers: int = 2
    webhook_workers: int = 1
    retry_initial: float = 5.0
    retry_max: float = 900.0
    retry_window: float = 86400.0
    poll_interval: float = 1.0
    lease_seconds: float = 30.0  # renewed every third of it while a delivery runs
    # [validation]
    validate_on_submit: bool = True
    validation_processes: int = 2
    # [workers] per receiving endpoint: concurrent deliveries, and the circuit breaker
    per_endpoint: int = 8
    circuit_threshold: int = 5
    circuit_cooldown: float = 30.0
    # [workers] the inbound processor (validation, MLS, linking responses) after the receipt
    inbound_workers: int = 1
    # [webhooks] the retry schedule: a failed delivery is tried again every retry_interval
    # seconds until give_up_after seconds after its event; each attempt waits at most timeout
    webhook_retry_interval: float = 3600.0
    webhook_give_up_after: float = 86400.0
    webhook_timeout: float = 5.0
    # [documents] a business document submitted again (same sender, receiver, type, ID and
    # IssueDate) within duplicate_window seconds is refused; 0 turns the check off
    duplicate_window: float = 7 * 86400.0
    # [reporting]
    reporting_schedule: bool = True
    reporting_send: bool = True
    reporting_receiver: str = "9925:be0848934496"
    reporting_check_interval: float = 3600.0
    # [telemetry]
    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4318/v1/traces
    service_name: str = "peppol-gateway"
    # [archive]
    archive_target: str | None = None  # file:///path or s3://bucket/prefix
    archive_s3_endpoint: str | None = None
    archive_s3_region: str = "us-east-1"
    archive_s3_access_key: str | None = _secret()
    archive_s3_secret_key: str | None = _secret()
    archive_after_days: float = 90.0
    archive_retention_days: float = 3653.0
    archive_interval: float = 3600.0
    # [limits]
    max_message_bytes: int = 110 * 1024 * 1024
    max_payload_bytes: int = 200 * 1024 * 1024
    # [mls] Message Level Status deadlines (MLS-1 20 minutes, MLS-2 25): operators are warned
    # this many seconds before a limit passes without the MLS; checked every check_interval.
    mls_warn_margin: float = 300.0
    mls_check_interval: float = 30.0
    # [directory] the Peppol Directory: the indexer told of business card changes (unset: not
    # told; over https with our SMP certificate as client certificate), the CA file for its
    # server certificate (default: the system store), how often a failed notification is tried
    # again and when it gives up; and the search API behind /v1/directory/search
    directory_indexer_url: str | None = None
    directory_indexer_trust: Path | None = None
    directory_retry_interval: float = 300.0
    directory_give_up_after: float = 86400.0
    directory_search_url: str = "https://directory.peppol.eu/search/1.0/json"


# (field, section, key, parser). The parser turns a raw value (str from the environment,
# or a TOML value) into the typed value, raising ValueError with a human-readable reason.
def _as_int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer from {lo} to {hi}, got {raw!r}")
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected an integer from {lo} to {hi}, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}, got {value}")
        return value

    return parse


def _as_float(lo: float, hi: float) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number from {lo} to {hi}, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a number from {lo} to {hi}, got {value}")
        return value

    return parse


def _as_choice(*choices: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _as_str(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"expected a non-empty string, got {raw!r}")
    return raw.strip()


def _as_path(raw: Any) -> Path:
    return Path(_as_str(raw))


def _as_paths(raw: Any) -> tuple[Path, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"expected a list of paths, got {raw!r}")
    return tuple(_as_path(item) for item in items)


def _as_url(*schemes: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = _as_str(raw)
        scheme = value.split(":", 1)[0].lower()
        if scheme not in schemes or "://" not in value:
            raise ValueError(f"expected a URL starting with {' or '.join(schemes)}://")
        return value

    return parse


def _as_hostport(raw: Any) -> str:
    value = _as_str(raw)
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    _as_int(1, 65535)(port)
    return value


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _as_tsig_key(raw: Any) -> str:
    value = _as_str(raw)
    name, sep, secret = value.partition(":")
    if not sep or not name or not secret:
        raise ValueError("expected NAME:BASE64-SECRET (a TSIG hmac-sha256 key)")
    return value


_FIELDS: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("database_url", "database", "url", _as_url("postgresql", "postgres")),
    ("data_dir", "database", "data_dir", _as_path),
    ("database_pool_min", "database", "pool_min", _as_int(0, 1000)),
    ("database_pool_max", "database", "pool_max", _as_int(1, 1000)),
    ("listen_host", "http", "host", _as_str),
    ("listen_port", "http", "port", _as_int(0, 65535)),
    ("public_url", "http", "public_url", _as_url("http", "https")),
    ("shutdown_timeout", "http", "shutdown_timeout", _as_float(0, 600)),
    ("rate_limit", "http", "rate_limit", _as_int(1, 10_000_000)),
    ("reuse_port", "http", "reuse_port", _as_bool),
    ("log_format", "log", "format", _as_choice("console", "json")),
    ("log_level", "log", "level", _as_choice("debug", "info", "warning", "error")),
    ("ap_key", "ap", "key", _as_path),
    ("ap_cert", "ap", "cert", _as_path),
    ("ap_trust", "ap", "trust", _as_paths),
    ("revocation", "ap", "revocation", _as_choice("soft-fail", "hard-fail", "off")),
    ("reload_interval", "ap", "reload_interval", _as_float(0.1, 86400)),
    ("smp_url", "smp", "url", _as_url("http", "https")),
    ("smp_key", "smp", "key", _as_path),
    ("smp_cert", "smp", "cert", _as_path),
    ("smp_trust", "smp", "trust", _as_paths),
    ("sml_zone", "sml", "zone", _as_str),
    ("sml_dns", "sml", "dns", _as_hostport),
    ("sml_update_server", "sml", "update_server", _as_hostport),
    ("sml_update_key", "sml", "update_key", _as_tsig_key),
    ("sml_management_url", "sml", "management_url", _as_url("https", "http")),
    ("sml_management_trust", "sml", "management_trust", _as_path),
    ("smp_id", "smp", "id", _as_str),
    ("outbound_workers", "workers", "outbound", _as_int(0, 256)),
    ("webhook_workers", "workers", "webhook", _as_int(0, 256)),
    ("retry_initial", "workers", "retry_initial", _as_float(0.01, 86400)),
    ("retry_max", "workers", "retry_max", _as_float(0.01, 86400)),
    ("retry_window", "workers", "retry_window", _as_float(0, 30 * 86400)),
    ("poll_interval", "workers", "poll_interval", _as_float(0.01, 60)),
    ("lease_seconds", "workers", "lease_seconds", _as_float(1, 86400)),
    ("inbound_workers", "workers", "inbound", _as_int(0, 256)),
    ("per_endpoint", "workers", "per_endpoint", _as_int(1, 1024)),
    ("circuit_threshold", "workers", "circuit_threshold", _as_int(1, 1000)),
    ("circuit_cooldown", "workers", "circuit_cooldown", _as_float(0.1, 86400)),
    ("webhook_retry_interval", "webhooks", "retry_interval", _as_float(1, 86400)),
    ("webhook_give_up_after", "webhooks", "give_up_after", _as_float(0, 30 * 86400)),
    ("webhook_timeout", "webhooks", "timeout", _as_float(0.1, 300)),
    ("duplicate_window", "documents", "duplicate_window", _as_float(0, 366 * 86400)),
    ("reporting_schedule", "reporting", "schedule", _as_bool),
    ("reporting_send", "reporting", "send", _as_bool),
    ("reporting_receiver", "reporting", "receiver", _as_str),
    ("reporting_check_interval", "reporting", "check_interval", _as_float(1, 86400)),
    ("otlp_endpoint", "telemetry", "otlp_endpoint", _as_url("http", "https")),
    ("service_name", "telemetry", "service_name", _as_str),
    ("archive_target", "archive", "target", _as_str),
    ("archive_s3_endpoint", "archive", "s3_endpoint", _as_url("http", "https")),
    ("archive_s3_region", "archive", "s3_region", _as_str),
    ("archive_s3_access_key", "archive", "s3_access_key", _as_str),
    ("archive_s3_secret_key", "archive", "s3_secret_key", _as_str),
    ("archive_after_days", "archive", "after_days", _as_float(0, 36500)),
    ("archive_retention_days", "archive", "retention_days", _as_float(0, 36500)),
    ("archive_interval", "archive", "interval", _as_float(0.1, 86400)),
    ("validate_on_submit", "validation", "on_submit", _as_bool),
    ("validation_processes", "validation", "processes", _as_int(1, 64)),
    ("max_message_bytes", "limits", "max_message_bytes", _as_int(1024, 2**34)),
    ("max_payload_bytes", "limits", "max_payload_bytes", _as_int(1024, 2**34)),
    ("mls_warn_margin", "mls", "warn_margin", _as_float(0, 1200)),
    ("mls_check_interval", "mls", "check_interval", _as_float(0.1, 3600)),
    ("directory_indexer_url", "directory", "indexer_url", _as_url("https", "http")),
    ("directory_indexer_trust", "directory", "indexer_trust", _as_path),
    ("directory_retry_interval", "directory", "retry_interval", _as_float(1, 86400)),
    ("directory_give_up_after", "directory", "give_up_after", _as_float(0, 30 * 86400)),
    ("directory_search_url", "directory", "search_url", _as_url("https", "http")),
)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config file", f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config file", f"{path} is not valid TOML: {exc}") from None


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from defaults, then the TOML file, then the environment."""
    env = os.environ if environ is None else environ
    if config_file is None and env.get("PEPPOL_CONFIG"):
        config_file = Path(env["PEPPOL_CONFIG"])
    document = _read_toml(config_file) if config_file is not None else {}

    known = {(section, key) for _, section, key, _ in _FIELDS}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(section, "expected a table ([section]) in the config file")
        for key in table:
            if (section, key) not in known:
                raise ConfigError(f"{section}.{key}", "unknown setting")

    values: dict[str, Any] = {}
    for name, section, key, parse in _FIELDS:
        env_name = _env_name(section, key)
        raw: Any = None
        source = ""
        if key in document.get(section, {}):
            raw, source = document[section][key], f"{section}.{key}"
        if env_name in env:
            raw, source = env[env_name], env_name
        elif f"{env_name}_FILE" in env:  # a mounted secret (Kubernetes, Docker/Podman secrets)
            source = f"{env_name}_FILE"
            try:
                raw = Path(env[source]).read_text().strip()
            except OSError as exc:
                raise ConfigError(source, f"cannot read {env[source]}: {exc.strerror}") from None
        if name == "database_url" and "DATABASE_URL" in env and source not in (env_name, f"{env_name}_FILE"):
            raw, source = env["DATABASE_URL"], "DATABASE_URL"
        if raw is None or (isinstance(raw, str) and raw == "" and source.isupper()):
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(source, str(exc)) from None

    settings = Settings(**values)
    if settings.database_pool_min > settings.database_pool_max:
        raise ConfigError("database.pool_min", "must not be larger than database.pool_max")
    return settings


def describe_settings() -> list[tuple[str, str, str]]:
    """(TOML name, environment variable, default) for each setting, for documentation."""
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    return [(f"{section}.{key}", _env_name(section, key), repr(defaults[name])) for name, section, key, _ in _FIELDS]
