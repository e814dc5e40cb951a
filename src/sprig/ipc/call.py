"""One operation call as a handler sees it, what it returns, and request-field readers.

A handler is ``async def handler(call: Call, request: dict) -> Reply``. It reads its fields with
the helpers below (each refusal names the field, the value and what is allowed), does the work
through ``call.core`` and returns the response shape and body. A streaming operation (a
subscription) also returns ``close``: the server keeps the stream open, the handler pushes events
with ``call.emit``, and the server calls ``close`` when the client ends the stream or disconnects.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sprig.ipc.core import IpcCore, invalid

#: Default cap on one message's payload (PublishToTopic / PublishToIoTCore), in bytes. 128 KiB
#: is the MQTT bridge's default ``maxMessageSizeInBytes`` (AWS IoT Core's own limit), so a
#: message that is fine locally can also be routed to the cloud; and the bus keeps up to 1000
#: queued messages per subscriber, so this bounds a slow subscriber to ~128 MiB.
DEFAULT_MAX_PAYLOAD = 128 * 1024


@dataclass(frozen=True)
class Call:
    """The context of one operation call on one stream of one connection."""

    component: str
    operation: str
    stream_id: int
    core: IpcCore
    max_payload: int
    #: Send a stream event (``shape``, JSON body) on this call's stream; a no-op once closed.
    emit: Callable[[str, Any], None]
    #: Wait until the socket's write buffer has room (back-pressure for event floods).
    drain: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Reply:
    """The first response; ``close`` set means the stream stays open for events."""

    shape: str
    body: dict[str, Any]
    close: Callable[[], None] | None = None


Handler = Callable[[Call, dict[str, Any]], Awaitable[Reply]]


def string(req: dict[str, Any], name: str, *, required: bool = True,
           allowed: str = "a non-empty string") -> str | None:
    """The string field ``name``; None when absent and not required."""
    v = req.get(name)
    if v is None:
        if required:
            raise invalid(name, "is required", v, allowed)
        return None
    if not isinstance(v, str) or v == "":
        raise invalid(name, "must be a non-empty string", v, allowed)
    return v


def required_string(req: dict[str, Any], name: str, *, allowed: str = "a non-empty string"
                    ) -> str:
    v = string(req, name, required=True, allowed=allowed)
    assert v is not None
    return v


def key_path(req: dict[str, Any], name: str = "keyPath") -> list[str]:
    """A key path: a list of non-empty strings; absent means the root ([])."""
    v = req.get(name)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(k, str) and k for k in v):
        raise invalid(name, "must be a list of non-empty strings", v,
                      'e.g. ["mqtt", "port"]; [] or absent for the whole configuration')
    return list(v)


def base64_bytes(value: Any, name: str) -> bytes:
    """Decode a base64 blob field (how awsiotsdk sends ``bytes`` in JSON)."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise invalid(name, "must be a base64 string", value, "base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(name, "is not valid base64", value[:64], "base64 text") from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_size(size: int, name: str, limit: int) -> None:
    if size > limit:
        raise invalid(name, f"is {size} bytes", f"{size} bytes",
                      f"at most {limit} bytes (the IPC server's maximum message size)")
