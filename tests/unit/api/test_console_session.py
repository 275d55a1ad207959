"""The console's pure rules: where a sign-in may lead, which requests are same-origin, the
cookie's attributes on and off loopback, and the form token derived from the session."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.api.console.session import COOKIE, _next, _same_origin, _set_cookie
from gateway.security.credentials import csrf_token, new_secret


def test_sign_in_leads_only_to_console_pages() -> None:
    assert _next("/console/documents/s1?x=1") == "/console/documents/s1?x=1"
    for outside in (None, "", "https://evil.example/", "//evil.example/console/", "/v1/companies", "/console\\x"):
        assert _next(outside) == "/console/"


def test_a_post_from_another_origin_is_not_same_origin() -> None:
    def request(origin: str | None) -> web.Request:
        headers = {"Host": "ap.example.com"} | ({"Origin": origin} if origin is not None else {})
        return make_mocked_request("POST", "/console/companies", headers=headers)

    assert _same_origin(request(None))  # browsers may leave it out on same-origin requests
    assert _same_origin(request("https://ap.example.com"))
    assert not _same_origin(request("https://evil.example"))
    assert not _same_origin(request("null"))


def test_the_session_cookie_is_secure_except_on_loopback() -> None:
    for host, secure in (("127.0.0.1:8080", False), ("localhost:8080", False), ("[::1]:8080", False),
                         ("ap.example.com", True)):  # fmt: skip
        response = web.Response()
        _set_cookie(make_mocked_request("GET", "/console/", headers={"Host": host}), response, COOKIE, "v", 60)
        morsel = response.cookies[COOKIE]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/console"
        assert bool(morsel["secure"]) is secure, host


def test_the_form_token_belongs_to_its_session() -> None:
    one, other = new_secret("gws"), new_secret("gws")
    assert csrf_token(one) == csrf_token(one)
    assert csrf_token(one) != csrf_token(other)
    assert one not in csrf_token(one)
