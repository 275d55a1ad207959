"""The container image, built the way `make image` builds it (on a locally made Debian base, as
no registry is reachable here) and run against the test PostgreSQL: it serves, reaches its
database, runs as a non-root user on a read-only root filesystem, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.dev.pki import DevPki
from tests.support.gateways import free_port, new_database
from tests.support.paths import CONTAINER, ROOT

CONF = CONTAINER / "containers.conf"
BASE = "localhost/debian-base:bookworm"
IMAGE = "localhost/peppol-gateway:test"

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or shutil.which("mmdebstrap") is None or os.geteuid() != 0,
    reason="podman, runc and mmdebstrap (as root) are needed to build the image here",
)


def _env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def _run(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    _run("bash", str(ROOT / "deploy" / "local-base-image.sh"), BASE)
    _run("bash", str(ROOT / "deploy" / "build-image.sh"), BASE, IMAGE, "podman")
    yield IMAGE
    subprocess.run(["podman", "rmi", "-f", IMAGE], capture_output=True, env=_env(), check=False)


def _credentials(pki: DevPki, directory: Path) -> Path:
    """Copies of the keys and certificates the container user (uid 10001) may read."""
    for name in ("ap1.key.pem", "ap1.cert.pem", "ap-ca.cert.pem", "smp.key.pem", "smp.cert.pem", "smp-ca.cert.pem"):
        shutil.copy(pki.directory / name, directory / name)
        os.chown(directory / name, 10001, 10001)
        os.chmod(directory / name, 0o400)
    directory.chmod(0o755)
    return directory


async def test_the_image_serves_as_a_non_root_user_on_a_read_only_root(
    image: str, pg_dsn: str, template_db: str, dev_pki: DevPki, tmp_path: Path
) -> None:
    dsn = await new_database(pg_dsn, template_db)
    keys = _credentials(dev_pki, tmp_path)
    port = free_port()
    name = f"peppol-gateway-test-{port}"
    settings = {
        "DATABASE_URL": dsn,
        "PEPPOL_HTTP_PORT": str(port),
        "PEPPOL_AP_KEY": "/etc/peppol-gateway/ap1.key.pem",
        "PEPPOL_AP_CERT": "/etc/peppol-gateway/ap1.cert.pem",
        "PEPPOL_AP_TRUST": "/etc/peppol-gateway/ap-ca.cert.pem",
        "PEPPOL_SMP_KEY": "/etc/peppol-gateway/smp.key.pem",
        "PEPPOL_SMP_CERT": "/etc/peppol-gateway/smp.cert.pem",
        "PEPPOL_SMP_TRUST": "/etc/peppol-gateway/smp-ca.cert.pem",
        "PEPPOL_REPORTING_SCHEDULE": "false",
    }
    env_args = [arg for key, value in settings.items() for arg in ("-e", f"{key}={value}")]
    _run(
        "podman", "run", "-d", "--name", name, "--network=host", "--read-only", "--tmpfs", "/tmp",
        "-v", f"{keys}:/etc/peppol-gateway:ro", *env_args, image,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/ping", timeout=2) as response:
                    body = json.loads(response.read())
                    break
            except OSError:
                logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, env=_env())
                assert time.monotonic() < deadline, (logs.stdout + logs.stderr)[-3000:]
                time.sleep(0.5)
        assert body["data"]["database"] == "ok"
        assert _run("podman", "exec", name, "id", "-u").strip() == "10001"
        user = _run("podman", "inspect", "--format", "{{.Config.User}}", name).strip()
        assert user == "10001:10001"
        denied = subprocess.run(
            ["podman", "exec", name, "touch", "/opt/peppol-gateway/x"], capture_output=True, env=_env(), check=False
        )
        assert denied.returncode != 0  # read-only root filesystem
        health = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True, env=_env(), check=False)
        assert health.returncode == 0, health.stderr
        _run("podman", "stop", "--time", "20", name)
        assert _run("podman", "inspect", "--format", "{{.State.ExitCode}}", name).strip() == "0"
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, env=_env(), check=False)
