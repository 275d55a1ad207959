"""The shipped Peppol G3 CAs, the trust in force per SML zone, and the start-up check of our own
certificates against it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.core.config import ConfigError, Settings, load_settings
from gateway.dev.pki import DevPki, issue, name
from gateway.security.anchors import (
    SHIPPED_DIR,
    check_own_certificate,
    peppol_network,
    shipped_trust_file,
    trust_in_force,
)

_ORG = "O=OpenPEPPOL AISBL,C=BE"
_TEST = f"OU=FOR TEST ONLY,{_ORG}"
# (role, network) -> (issuing CA subject, root subject, SHA-256 of the CA, SHA-256 of the root)
EXPECTED = {
    ("ap", "production"): (
        f"CN=PEPPOL ACCESS POINT CA - G3,{_ORG}", f"CN=PEPPOL Root CA - G3,{_ORG}",
        "b65e375a5826ada16517b2aa8a881b6fcaff5e48e7559b9e96bba5c64921f900",
        "b6075b9f8655e756777f182d1407c0049442d3a2f57dff9781523828f331f211",
    ),
    ("smp", "production"): (
        f"CN=PEPPOL SERVICE METADATA PUBLISHER CA - G3,{_ORG}", f"CN=PEPPOL Root CA - G3,{_ORG}",
        "d9e17467c69e51fc4f5c5263542fc68d2abba5dfaae62e87fbd6829f1de621c4",
        "b6075b9f8655e756777f182d1407c0049442d3a2f57dff9781523828f331f211",
    ),
    ("ap", "test"): (
        f"CN=PEPPOL ACCESS POINT TEST CA - G3,{_TEST}", f"CN=PEPPOL Root TEST CA - G3,{_TEST}",
        "d2445a0f115ee64cc141a849fe142927fe5701b7d9b58d3e6f53993162115cc0",
        "8b4e0e5dc7c8208cba88edebfad31e064740d896ab6e18de0b03386fd24be734",
    ),
    ("smp", "test"): (
        f"CN=PEPPOL SERVICE METADATA PUBLISHER TEST CA - G3,{_TEST}", f"CN=PEPPOL Root TEST CA - G3,{_TEST}",
        "eb78dabb622bbc701592f085bc27ab817fe1c0d4753ae829682e8127b3b00ce7",
        "8b4e0e5dc7c8208cba88edebfad31e064740d896ab6e18de0b03386fd24be734",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("role", "network"), sorted(EXPECTED))
def test_each_shipped_ca_is_the_peppol_g3_ca_signed_by_its_root(role: str, network: str) -> None:
    ca_subject, root_subject, ca_sha256, root_sha256 = EXPECTED[(role, network)]
    ca, root = x509.load_pem_x509_certificates(shipped_trust_file(role, network).read_bytes())
    assert ca.subject.rfc4514_string() == ca_subject
    assert ca.issuer.rfc4514_string() == root_subject
    assert root.subject.rfc4514_string() == root.issuer.rfc4514_string() == root_subject
    assert ca.fingerprint(hashes.SHA256()).hex() == ca_sha256
    assert root.fingerprint(hashes.SHA256()).hex() == root_sha256
    ca.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    now = dt.datetime.now(dt.UTC)
    for cert in (ca, root):
        assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        assert cert.not_valid_after_utc.year >= 2035 - 1
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 4096
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1


def test_only_the_four_bundles_ship() -> None:
    assert sorted(p.name for p in SHIPPED_DIR.glob("*.pem")) == sorted(
        f"peppol-g3-{role}-{network}.pem" for role, network in EXPECTED
    )


def test_the_peppol_networks_are_known_by_name_and_by_dns_zone() -> None:
    assert peppol_network("production") == "production"
    assert peppol_network("participant.sml.test.tech.peppol.org.") == "test"
    assert peppol_network("sml.sandbox.test") is None
    assert peppol_network("ec-test") is None


@pytest.mark.parametrize("network", ["production", "test"])
def test_a_peppol_zone_defaults_to_its_shipped_cas(network: str) -> None:
    settings = load_settings(environ={"PEPPOL_SML_ZONE": network})
    for role in ("ap", "smp"):
        trust = trust_in_force(settings, role)
        assert trust.source == "shipped" and trust.network == network
        assert trust.paths == (shipped_trust_file(role, network),)
        assert trust.subjects[0] == EXPECTED[(role, network)][0]


def test_another_zone_keeps_the_development_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no certs-dev/ here
    settings = Settings(sml_zone="sml.sandbox.test")
    with pytest.raises(ConfigError, match=r"ap\.trust: cannot read certs-dev/ap-ca.cert.pem"):
        trust_in_force(settings, "ap")


def test_an_explicit_trust_is_used_as_chosen(dev_pki: DevPki) -> None:
    settings = load_settings(
        environ={"PEPPOL_SML_ZONE": "production", "PEPPOL_AP_TRUST": str(dev_pki.directory / "ap-ca.cert.pem")}
    )
    trust = trust_in_force(settings, "ap")
    assert trust.source == "configured"
    assert trust.certificates == (dev_pki.ap_ca.cert,)
    check_own_certificate(dev_pki.access_points["ap1"].cert, trust, "ap.cert")
    assert trust_in_force(settings, "smp").source == "shipped"


def test_the_lookup_zone_decides_the_default() -> None:
    settings = Settings(sml_zone="sml.sandbox.test")
    assert trust_in_force(settings, "smp", "production").network == "production"


def test_the_development_pki_cannot_serve_a_peppol_zone(dev_pki: DevPki) -> None:
    trust = trust_in_force(Settings(sml_zone="test"), "ap")
    with pytest.raises(ConfigError) as caught:
        check_own_certificate(dev_pki.access_points["ap1"].cert, trust, "ap.cert")
    message = str(caught.value)
    assert message.startswith("ap.cert: ") and "\n" not in message
    assert "the shipped Peppol test G3 AP CA" in message and "needs a Peppol G3 certificate" in message
    smp_trust = trust_in_force(Settings(sml_zone="production"), "smp")
    with pytest.raises(ConfigError, match=r"smp\.cert: .*not issued by a trusted SMP CA"):
        check_own_certificate(dev_pki.smp.cert, smp_trust, "smp.cert")


def test_a_peppol_test_certificate_cannot_serve_production() -> None:
    # A stand-in for the test AP CA (same name; its real key is OpenPeppol's) and a certificate from it.
    test_ca = issue(name("PEPPOL ACCESS POINT TEST CA - G3", "OpenPEPPOL AISBL", "BE", "FOR TEST ONLY"), None, ca=True)
    ours = issue(name("PNO000123", "Example AS", "NO", "PEPPOL TEST AP"), test_ca, ca=False)
    trust = trust_in_force(Settings(sml_zone="production"), "ap")
    with pytest.raises(ConfigError, match=r"a Peppol test certificate cannot be used with sml\.zone = production"):
        check_own_certificate(ours.cert, trust, "ap.cert")


def test_an_expired_own_certificate_stops_start_up(dev_pki: DevPki) -> None:
    now = dt.datetime.now(dt.UTC)
    old = issue(
        name("POP000777"), dev_pki.ap_ca, ca=False, not_before=now - dt.timedelta(days=800),
        not_after=now - dt.timedelta(days=1),
    )  # fmt: skip
    settings = load_settings(environ={"PEPPOL_AP_TRUST": str(dev_pki.directory / "ap-ca.cert.pem")})
    with pytest.raises(ConfigError, match="expired"):
        check_own_certificate(old.cert, trust_in_force(settings, "ap"), "ap.cert")
