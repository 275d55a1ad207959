"""Which SML registrar the settings give: LocalSml for a local zone with an update server, the
SML management client for the Peppol zones (or any zone with a management URL), and never a
silent nothing for a Peppol zone that lacks its settings."""

from __future__ import annotations

import pytest

import smp
from gateway.core.config import ConfigError, Settings, load_settings
from gateway.dev.pki import DevPki
from gateway.directory.sml import SmlNotConfigured, build_registrar

SMP_URL = "https://smp.example/smp"


def settings(pki: DevPki, **env: str) -> Settings:
    d = pki.directory
    return load_settings(
        environ={"PEPPOL_SMP_KEY": str(d / "smp.key.pem"), "PEPPOL_SMP_CERT": str(d / "smp.cert.pem"), **env}
    )


def test_local_zone_with_an_update_server_gets_local_dns_updates(dev_pki: DevPki) -> None:
    s = settings(dev_pki, PEPPOL_SML_ZONE="sml.local.test", PEPPOL_SML_UPDATE_SERVER="127.0.0.1:53",
                 PEPPOL_SML_UPDATE_KEY="k:c2VjcmV0")  # fmt: skip
    assert isinstance(build_registrar(s, SMP_URL), smp.LocalSml)
    assert build_registrar(settings(dev_pki, PEPPOL_SML_ZONE="sml.local.test"), SMP_URL) is None


def test_peppol_zones_get_the_management_client_at_their_default_url(dev_pki: DevPki) -> None:
    for zone, url in (("test", "https://api.sml.test.tech.peppol.org/edelivery-sml"),
                      ("production", "https://api.sml.prod.tech.peppol.org/edelivery-sml")):  # fmt: skip
        registrar = build_registrar(settings(dev_pki, PEPPOL_SML_ZONE=zone, PEPPOL_SMP_ID="GW-1"), SMP_URL)
        assert isinstance(registrar, smp.SmlManagementClient)
        assert (registrar.base_url, registrar.smp_id) == (url, "GW-1")
    other = settings(dev_pki, PEPPOL_SML_ZONE="sml.other.test", PEPPOL_SML_MANAGEMENT_URL="https://sml.other.test/x",
                     PEPPOL_SMP_ID="GW-1")  # fmt: skip
    registrar = build_registrar(other, SMP_URL)
    assert isinstance(registrar, smp.SmlManagementClient) and registrar.base_url == "https://sml.other.test/x"


async def test_a_peppol_zone_without_an_smp_id_refuses_every_registration_saying_why(dev_pki: DevPki) -> None:
    registrar = build_registrar(settings(dev_pki, PEPPOL_SML_ZONE="test"), SMP_URL)
    assert isinstance(registrar, SmlNotConfigured)
    with pytest.raises(smp.RegistrationError, match=r"smp\.id"):
        await registrar.register(smp.ParticipantId.parse("0192:991825827"))


def test_bad_combinations_stop_start_up(dev_pki: DevPki) -> None:
    with pytest.raises(ConfigError, match=r"sml\.update_server"):
        build_registrar(settings(dev_pki, PEPPOL_SML_ZONE="production", PEPPOL_SML_UPDATE_SERVER="127.0.0.1:53",
                                 PEPPOL_SML_UPDATE_KEY="k:c2VjcmV0"), SMP_URL)  # fmt: skip
    with pytest.raises(ConfigError, match=r"sml\.management_trust"):
        build_registrar(settings(dev_pki, PEPPOL_SML_ZONE="test", PEPPOL_SMP_ID="GW-1",
                                 PEPPOL_SML_MANAGEMENT_TRUST="/nonexistent/ca.pem"), SMP_URL)  # fmt: skip
