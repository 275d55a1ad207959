"""Which SMP URLs an SML record may point to, per zone."""

from __future__ import annotations

import pytest

from smp import InsecureEndpoint, MalformedRecord, check_endpoint_url
from smp._sml import check_smp_url


def test_peppol_zones_accept_only_https_smp_urls() -> None:
    with pytest.raises(MalformedRecord, match="https"):
        check_smp_url("http://smp.example.org", "production")
    assert check_smp_url("https://smp.example.org/path/smp/", "test") == "https://smp.example.org/path/smp"
    assert check_smp_url("http://127.0.0.1:8081", "sml.local") == "http://127.0.0.1:8081"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@smp.example.org",
        "https://smp.example.org/smp?x=1",
        "https://smp.example.org#a",
        "ftp://x",
    ],
)
def test_smp_urls_with_user_query_fragment_or_other_schemes_are_malformed(url: str) -> None:
    with pytest.raises(MalformedRecord):
        check_smp_url(url, "production")


@pytest.mark.parametrize("zone", ["production", "test", "participant.sml.prod.tech.peppol.org"])
def test_peppol_zones_refuse_an_as4_endpoint_without_tls(zone: str) -> None:
    with pytest.raises(InsecureEndpoint, match=r"'http://ap\.example/as4' from the SMP is not https://.*requires TLS"):
        check_endpoint_url("http://ap.example/as4", zone)
    assert check_endpoint_url("https://ap.example/as4", zone) == "https://ap.example/as4"
    assert not InsecureEndpoint.retryable


def test_a_local_zone_allows_an_http_endpoint_but_nothing_else() -> None:
    assert check_endpoint_url("http://127.0.0.1:8080/as4", "sml.sandbox.test") == "http://127.0.0.1:8080/as4"
    with pytest.raises(InsecureEndpoint):
        check_endpoint_url("ftp://ap.example/as4", "sml.sandbox.test")
