"""Who may use the console, and the checks every request passes.

**Login.** ``sprig console login`` asks the core (over the owner-only management socket, so
only the core's own user can) for a one-time link: a random 256-bit token that expires after
8 hours (as ``greengrass-cli get-debug-password``, but nothing to copy into a form). Opening it
once starts a session; the token is then spent. The core keeps only SHA-256 digests of tokens
and session ids, in memory: a restarted core forgets every session.

**Session.** An ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` over TLS), named after the
port so two cores on one host do not overwrite each other's; it lasts 8 hours from login.

**Every request** (:func:`check_request`):

* ``Host`` must name this console (loopback names and the bound address, with its port): a page
  on another site whose name resolves to 127.0.0.1 (DNS rebinding) is refused;
* ``Origin``, when sent, must be this console's own origin, and ``Sec-Fetch-Site`` must be
  ``same-origin`` (or, for a read, ``none``: the user typed the address). SameSite does not
  protect a console on a loopback port from another loopback port — sites ignore ports — so
  this check, not the cookie attribute, keeps out a page served by any other local process;
* a change (any POST) also needs the session's CSRF token in ``X-CSRF-Token`` and a JSON body.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sprig.httpserver import HttpRequest

LINK_TTL_S: Final = 8 * 3600
SESSION_TTL_S: Final = 8 * 3600
#: outstanding links and live sessions kept; beyond that the oldest goes (a bound, not a quota)
MAX_LINKS: Final = 32
MAX_SESSIONS: Final = 32
CSRF_HEADER: Final = "X-CSRF-Token"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class Session:
    digest: str
    csrf: str
    created: float
    expires: float


class LinkRefused(Exception):
    """A login link that does not open a session; the message says why, for the page."""


class Sessions:
    """One-time login links and the sessions they open. ``clock`` is for tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._links: dict[str, float] = {}          # token digest -> expiry
        self._spent: dict[str, float] = {}          # spent token digest -> its expiry
        self._sessions: dict[str, Session] = {}     # session id digest -> session

    def issue_link(self, ttl_s: float = LINK_TTL_S) -> tuple[str, float]:
        """A new one-time token and when it expires (``ttl_s`` at most 8 hours)."""
        now = self._clock()
        self._prune(now)
        token = secrets.token_urlsafe(32)
        expires = now + min(ttl_s, LINK_TTL_S)
        self._links[_digest(token)] = expires
        while len(self._links) > MAX_LINKS:
            del self._links[next(iter(self._links))]
        return token, expires

    def redeem(self, token: str) -> tuple[str, Session]:
        """Spend ``token``: a new session id and its session; raises :class:`LinkRefused`."""
        now = self._clock()
        digest = _digest(token)
        expires = self._links.get(digest)
        if expires is None:
            if digest in self._spent:
                raise LinkRefused("this login link was used already: each link opens one "
                                  "session. Run `sprig console login` for a new one.")
            raise LinkRefused("this login link is not valid (or the core restarted since it "
                              "was made). Run `sprig console login` for a new one.")
        if expires <= now:
            raise LinkRefused("this login link has expired (links last 8 hours). Run "
                              "`sprig console login` for a new one.")
        del self._links[digest]
        self._spent[digest] = expires
        self._prune(now)
        session_id = secrets.token_urlsafe(32)
        session = Session(_digest(session_id), secrets.token_urlsafe(32), now,
                          now + SESSION_TTL_S)
        self._sessions[session.digest] = session
        while len(self._sessions) > MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        return session_id, session

    def find(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown, ended or expired)."""
        if not session_id:
            return None
        session = self._sessions.get(_digest(session_id))
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._sessions[session.digest]
            return None
        return session

    def alive(self, session: Session) -> bool:
        return session.digest in self._sessions and session.expires > self._clock()

    def end(self, session: Session) -> None:
        self._sessions.pop(session.digest, None)

    def _prune(self, now: float) -> None:
        """Forget links an hour after they expired (until then they are refused as expired,
        not as unknown), spent links beyond a bound, and expired sessions."""
        self._links = {d: e for d, e in self._links.items() if e > now - 3600}
        while len(self._spent) > 4 * MAX_LINKS:
            del self._spent[next(iter(self._spent))]
        for digest in [d for d, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[digest]


@dataclass(frozen=True)
class Origin:
    """What this console answers as: its scheme, port and the host names it accepts (empty:
    any, when bound to a non-loopback address, where TLS already ties the name to the
    certificate)."""

    scheme: str
    port: int
    hosts: frozenset[str]

    @property
    def cookie(self) -> str:
        return f"sprig-console-{self.port}"

    def allows_host(self, host: str) -> bool:
        return not self.hosts or host.lower() in self.hosts


class Refused(Exception):
    """A request that fails a check: ``status`` (401/403) and a message naming the check."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def check_request(request: HttpRequest, origin: Origin) -> None:
    """Host, Origin and Fetch-metadata checks (raises :class:`Refused`). ``Sec-Fetch-Site:
    none`` (the user typed the address, or opened a bookmark) is accepted for reads only."""
    host = request.headers.get("Host", "")
    if not origin.allows_host(host):
        raise Refused(403, f"Host {host!r} is not this console; allowed: "
                           + ", ".join(sorted(origin.hosts)))
    sent = request.headers.get("Origin")
    if sent is not None and sent != f"{origin.scheme}://{host}":
        raise Refused(403, f"cross-origin request refused: Origin {sent!r} is not this "
                           f"console ({origin.scheme}://{host})")
    site = request.headers.get("Sec-Fetch-Site")
    allowed_sites = ("same-origin", "none") if request.method == "GET" else ("same-origin",)
    if site is not None and site not in allowed_sites:
        raise Refused(403, f"cross-site request refused (Sec-Fetch-Site: {site}); allowed: "
                           + ", ".join(allowed_sites))


def check_change(request: HttpRequest, session: Session) -> None:
    """A state-changing request: the session's CSRF token, and a JSON body."""
    token = request.headers.get(CSRF_HEADER, "")
    if not token or not secrets.compare_digest(token, session.csrf):
        raise Refused(403, f"missing or wrong {CSRF_HEADER} header: every change needs the "
                           "session's CSRF token (GET /api/session)")
    kind = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise Refused(403, f"a change must be sent as application/json, not {kind or 'nothing'}")


def cookie_value(request: HttpRequest, name: str) -> str | None:
    for header in request.headers.getall("Cookie"):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
    return None


def session_cookie(origin: Origin, session_id: str, max_age: int = SESSION_TTL_S) -> str:
    secure = "; Secure" if origin.scheme == "https" else ""
    return (f"{origin.cookie}={session_id}; Path=/; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{secure}")
