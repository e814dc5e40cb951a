"""The CLI's side of the management API: HTTP over the core's Unix socket (stdlib only, so the
CLI starts fast).

Every way the conversation can fail — no core, a core that stops or resets the connection
mid-answer, an answer that is not JSON, a call that takes longer than the timeout — becomes a
:class:`SprigError` whose message is one sentence, so the CLI never shows a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sprig.errors import SprigError
from sprig.paths import RootLayout

if TYPE_CHECKING:
    from http.client import HTTPConnection


class CoreNotRunning(SprigError):
    """No core answers on the root's management socket."""


class ManagementApiError(SprigError):
    """The core's management API refused a call: ``kind`` is its error type, ``str()`` its
    message (not :class:`sprig.local_api.invoke_api.InvokeApiError`, the Lambda API's)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class ManagementClient:
    def __init__(self, root: Path, timeout_s: float | None = 600.0) -> None:
        self.layout = RootLayout(root)
        self.timeout_s = timeout_s

    def _connect(self) -> HTTPConnection:
        path = self.layout.management_socket
        if not path.exists():
            raise CoreNotRunning(
                f"no Sprig core is running on {self.layout.root} (no socket {path}); "
                f"start one with: sprig core run --root {self.layout.root}")
        from sprig.cli.unix_http import UnixConnection

        conn = UnixConnection(str(path), self.timeout_s)
        try:
            conn.connect()
        except (ConnectionRefusedError, FileNotFoundError):
            raise CoreNotRunning(
                f"no Sprig core is running on {self.layout.root} (socket {path} refused the "
                f"connection); start one with: sprig core run --root {self.layout.root}"
            ) from None
        except PermissionError:
            raise SprigError(f"permission denied on {path}: the management socket is "
                             "owner-only; run as the user that runs the core") from None
        except OSError as exc:
            raise self._lost(exc, "connect") from None
        return conn

    def _lost(self, exc: BaseException, method: str) -> SprigError:
        """The one-sentence error for a conversation with the core that broke off."""
        if isinstance(exc, TimeoutError):
            return SprigError(
                f"the core on {self.layout.root} did not answer {method} within "
                f"{self.timeout_s:g} s; it may still be working on it (see `sprig status`)")
        if isinstance(exc, ValueError):
            return SprigError(f"the core on {self.layout.root} answered {method} with "
                              "something that is not JSON; see `sprig logs core`")
        why = getattr(exc, "strerror", None) or type(exc).__name__
        return SprigError(
            f"the connection to the core on {self.layout.root} was lost during {method} "
            f"({why}): the core may have stopped; see `sprig status` and `sprig logs core`")

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        from http.client import HTTPException

        conn = self._connect()
        try:
            body = json.dumps({"method": method, "params": params or {}})
            conn.request("POST", "/rpc", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            doc = json.loads(resp.read() or b"{}")
        except (OSError, HTTPException, ValueError) as exc:
            raise self._lost(exc, method) from None
        finally:
            conn.close()
        if not isinstance(doc, dict):
            raise self._lost(ValueError(), method)
        if "error" in doc:
            raise ManagementApiError(doc["error"].get("type", "Error"),
                                     doc["error"].get("message", ""))
        return doc.get("result")

    def stream(self, method: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        from http.client import HTTPException

        conn = self._connect()
        conn.timeout = None
        if conn.sock is not None:
            conn.sock.settimeout(None)
        try:
            body = json.dumps({"method": method, "params": params or {}})
            conn.request("POST", "/stream", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                doc = json.loads(resp.read() or b"{}")
                err = doc.get("error", {})
                raise ManagementApiError(err.get("type", "Error"), err.get("message", ""))
            while True:
                line = resp.readline()
                if not line:
                    return
                item = json.loads(line)
                if isinstance(item, dict) and "error" in item:
                    raise ManagementApiError(item["error"].get("type", "Error"),
                                   item["error"].get("message", ""))
                yield item
        except (OSError, HTTPException, ValueError, AttributeError) as exc:
            raise self._lost(exc, method) from None
        finally:
            conn.close()
