"""The console's listener: the core's own HTTP server on ``console.bindAddress:port`` (loopback
by default, TLS optional), and the one-time login links ``sprig console login`` prints.

What stays resident while no browser ever connects: this module, :mod:`sprig.console.auth`
and a listening socket. The API, the live channel and the pages' assets load on the first
request (:mod:`sprig.console.app`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sprig.console.auth import LINK_TTL_S, Origin, Sessions
from sprig.errors import SprigError, ValidationError
from sprig.httpserver import Answer, HttpRequest, HttpServer

if TYPE_CHECKING:
    from sprig.console.app import ConsoleApp
    from sprig.events import EventHub
    from sprig.paths import RootLayout
    from sprig.settings import ConsoleSettings

log = logging.getLogger("sprig.console")

Command = Callable[[dict[str, Any]], Awaitable[Any]]
StreamCommand = Callable[[dict[str, Any]], AsyncIterator[Any]]

#: request bodies: deployment documents are the largest thing a page sends
MAX_BODY = 1024 * 1024


class ConsoleServer:
    """Serve the console; ``commands``/``streams`` are the management API's methods."""

    def __init__(self, settings: ConsoleSettings, *, commands: Mapping[str, Command],
                 streams: Mapping[str, StreamCommand], events: EventHub, layout: RootLayout,
                 tls_files: tuple[Path, Path] | None = None) -> None:
        self.settings = settings
        self.commands = commands
        self.streams = streams
        self.events = events
        self.layout = layout
        self.sessions = Sessions()
        self.tls_files = tls_files
        self.fingerprint: str | None = None
        self.origin: Origin | None = None
        self.url = ""
        self._server: HttpServer | None = None
        self._app: ConsoleApp | None = None

    async def start(self) -> str:
        """Listen; return the console's URL. Raises SprigError naming what failed."""
        context = self._tls_context() if self.tls_files else None
        server = HttpServer(self._handle, max_body=MAX_BODY, name="console")
        bind = self.settings.bind_address
        try:
            port = await server.listen_tcp(bind, self.settings.port, tls=context)
        except OSError as e:
            await server.aclose()
            raise SprigError(f"console: cannot listen on {bind}:{self.settings.port}: "
                             f"{e.strerror or e}; set console.port in config.yaml to a free "
                             "port, or 0 for any") from None
        self._server = server
        scheme = "https" if context else "http"
        address = ipaddress.ip_address(bind)
        if address.is_loopback:
            shown = f"[{bind}]" if address.version == 6 else bind
            hosts = frozenset(f"{h}:{port}" for h in (shown, "localhost", "127.0.0.1",
                                                      "[::1]"))
        else:
            shown = socket.gethostname() if address.is_unspecified else (
                f"[{bind}]" if address.version == 6 else bind)
            hosts = frozenset()
        self.origin = Origin(scheme, port, hosts)
        self.url = f"{scheme}://{shown}:{port}"
        return self.url

    def _tls_context(self) -> ssl.SSLContext:
        assert self.tls_files is not None
        cert, key = self.tls_files
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
            pem = cert.read_text()
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ValidationError("console.tls", f"cannot use the certificate: {e}",
                                  value=f"{cert}, {key}",
                                  allowed="a PEM certificate and its private key") from None
        der = ssl.PEM_cert_to_DER_cert(pem[:pem.index("-----END CERTIFICATE-----") + 25])
        digest = hashlib.sha256(der).hexdigest().upper()
        self.fingerprint = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
        return context

    def login_link(self, ttl_s: float = LINK_TTL_S) -> dict[str, Any]:
        """``console.login``: a one-time link to a new session."""
        token, expires = self.sessions.issue_link(ttl_s)
        return {"url": f"{self.url}/login?token={token}", "expiresAt": expires,
                "sha256Fingerprint": self.fingerprint}

    async def _handle(self, request: HttpRequest) -> Answer:
        if self._app is None:
            from sprig.console.app import ConsoleApp

            self._app = ConsoleApp(self)
        return await self._app(request)

    async def aclose(self) -> None:
        if self._app is not None:
            self._app.close()
        if self._server is not None:
            await self._server.aclose(grace_s=2.0)
            self._server = None
