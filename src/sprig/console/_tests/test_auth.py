"""Login links and sessions (a fake clock), and the request checks, on real HttpRequest
objects."""

from __future__ import annotations

import pytest

from sprig.console.auth import (
    LINK_TTL_S,
    MAX_SESSIONS,
    SESSION_TTL_S,
    LinkRefused,
    Origin,
    Refused,
    Sessions,
    check_change,
    check_request,
    cookie_value,
    session_cookie,
)
from sprig.httpserver import Headers, HttpRequest


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def request(method: str = "GET", headers: dict[str, str] | None = None) -> HttpRequest:
    fields = [(k.lower(), v) for k, v in {"Host": "127.0.0.1:8000", **(headers or {})}.items()]
    return HttpRequest(method, "/api/x", Headers(fields), b"{}", 2, False, 1024)


ORIGIN = Origin("http", 8000, frozenset({"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}))


def test_a_link_opens_one_session_and_expires_after_8_hours() -> None:
    clock = Clock()
    sessions = Sessions(clock)
    token, expires = sessions.issue_link()
    assert expires == clock.now + LINK_TTL_S == clock.now + 8 * 3600
    assert len(token) >= 43                                   # 256 random bits
    session_id, session = sessions.redeem(token)
    assert sessions.find(session_id) is session
    with pytest.raises(LinkRefused, match="used already"):
        sessions.redeem(token)
    late, _ = sessions.issue_link()
    clock.now += LINK_TTL_S
    with pytest.raises(LinkRefused, match="expired"):
        sessions.redeem(late)
    with pytest.raises(LinkRefused, match="not valid"):
        sessions.redeem("guess")
    clock.now = session.created + SESSION_TTL_S
    assert sessions.find(session_id) is None                  # the session lasts 8 h too
    assert not sessions.alive(session)


def test_a_shorter_link_never_a_longer_one_and_sessions_are_bounded() -> None:
    clock = Clock()
    sessions = Sessions(clock)
    _, expires = sessions.issue_link(60)
    assert expires == clock.now + 60
    _, expires = sessions.issue_link(10 * LINK_TTL_S)
    assert expires == clock.now + LINK_TTL_S
    ids = [sessions.redeem(sessions.issue_link()[0])[0] for _ in range(MAX_SESSIONS + 3)]
    assert sessions.find(ids[0]) is None and sessions.find(ids[-1]) is not None
    _, session = sessions.redeem(sessions.issue_link()[0])
    sessions.end(session)
    assert not sessions.alive(session)


def test_requests_from_elsewhere_are_refused() -> None:
    check_request(request(), ORIGIN)
    check_request(request(headers={"Origin": "http://127.0.0.1:8000",
                                   "Sec-Fetch-Site": "same-origin"}), ORIGIN)
    check_request(request(headers={"Sec-Fetch-Site": "none"}), ORIGIN)     # typed address
    refused = [
        request(headers={"Host": "evil.example:8000"}),
        request(headers={"Origin": "http://evil.example"}),
        request(headers={"Origin": "http://127.0.0.1:8001"}),
        request(headers={"Origin": "https://127.0.0.1:8000"}),
        request(headers={"Sec-Fetch-Site": "same-site"}),
        request(headers={"Sec-Fetch-Site": "cross-site"}),
        request("POST", {"Sec-Fetch-Site": "none"}),
    ]
    for r in refused:
        with pytest.raises(Refused) as e:
            check_request(r, ORIGIN)
        assert e.value.status == 403


def test_a_change_needs_the_csrf_token_and_json() -> None:
    sessions = Sessions(Clock())
    _, session = sessions.redeem(sessions.issue_link()[0])
    good = {"X-CSRF-Token": session.csrf, "Content-Type": "application/json; charset=utf-8"}
    check_change(request("POST", good), session)
    for headers in ({"Content-Type": "application/json"},
                    {**good, "X-CSRF-Token": session.csrf[:-1]},
                    {**good, "Content-Type": "text/plain"},
                    {**good, "Content-Type": "application/x-www-form-urlencoded"}):
        with pytest.raises(Refused, match=r"CSRF|application/json"):
            check_change(request("POST", headers), session)


def test_the_cookie_is_httponly_strict_and_secure_over_tls() -> None:
    plain = session_cookie(ORIGIN, "abc")
    assert plain.startswith("sprig-console-8000=abc;")
    assert "HttpOnly" in plain and "SameSite=Strict" in plain and "Secure" not in plain
    assert "Max-Age=28800" in plain
    tls = session_cookie(Origin("https", 8000, frozenset()), "abc")
    assert "; Secure" in tls
    r = request(headers={"Cookie": "a=1; sprig-console-8000=xyz; b=2"})
    assert cookie_value(r, "sprig-console-8000") == "xyz"
    assert cookie_value(r, "sprig-console-8001") is None
