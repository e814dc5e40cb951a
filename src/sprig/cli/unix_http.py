"""``http.client`` over a Unix socket, for the management client.

A module of its own, imported on the first call rather than with :mod:`sprig.cli.client`:
``sprig core run`` loads the client's module, and must not keep ``http.client`` (and the
``email`` package it brings) resident for nothing."""

from __future__ import annotations

import http.client
import socket


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock
