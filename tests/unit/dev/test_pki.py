"""The development PKI: a Peppol-shaped hierarchy whose chains verify."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store

from gateway.dev.pki import DevPki, load_dev_pki


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_access_point_chains_verify_to_the_root(dev_pki: DevPki) -> None:
    # Peppol AP certificates mark extendedKeyUsage critical, which the Web PKI defaults
    # forbid, so the end-entity extension policy is relaxed; CA rules stay the defaults.
    store = Store([dev_pki.root.cert])
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(dt.datetime.now(dt.UTC))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    for issued in dev_pki.access_points.values():
        chain = verifier.verify(issued.cert, [dev_pki.ap_ca.cert])
        assert chain.chain[-1] == dev_pki.root.cert


def test_each_certificate_is_signed_by_its_issuer(dev_pki: DevPki) -> None:
    dev_pki.ap_ca.cert.verify_directly_issued_by(dev_pki.root.cert)
    dev_pki.smp_ca.cert.verify_directly_issued_by(dev_pki.root.cert)
    dev_pki.smp.cert.verify_directly_issued_by(dev_pki.smp_ca.cert)
    for issued in dev_pki.access_points.values():
        issued.cert.verify_directly_issued_by(dev_pki.ap_ca.cert)


def test_access_point_subjects_carry_seat_ids(dev_pki: DevPki) -> None:
    assert _cn(dev_pki.access_points["ap1"].cert) == "POP000001"
    assert _cn(dev_pki.access_points["ap2"].cert) == "POP000002"
    subject = dev_pki.access_points["ap1"].cert.subject
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "NO"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert dev_pki.access_points["ap1"].key.key_size == 2048


def test_access_point_key_usages_match_peppol_ap_certificates(dev_pki: DevPki) -> None:
    cert = dev_pki.access_points["ap1"].cert
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_encipherment
    assert usage.value.data_encipherment and not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False


def test_intermediate_cas_may_only_issue_end_entities(dev_pki: DevPki) -> None:
    for ca in (dev_pki.ap_ca, dev_pki.smp_ca):
        basic = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert basic.ca is True and basic.path_length == 0
        assert ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_smp_certificate_is_issued_by_the_smp_ca(dev_pki: DevPki) -> None:
    assert dev_pki.smp.cert.issuer == dev_pki.smp_ca.cert.subject
    assert "PEPPOL TEST SMP" in dev_pki.smp.cert.subject.rfc4514_string()


def test_written_files_load_back_with_private_keys_unreadable_by_others(dev_pki: DevPki) -> None:
    loaded = load_dev_pki(dev_pki.directory)
    assert loaded.access_points["ap1"].cert == dev_pki.access_points["ap1"].cert
    for key_file in dev_pki.directory.glob("*.key.pem"):
        assert key_file.stat().st_mode & 0o077 == 0
