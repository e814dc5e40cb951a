"""The event-stream RPC layer on top of the framing (awscrt ``event_stream_rpc.h``).

Every message carries three int32 headers: ``:message-type``, ``:message-flags`` and
``:stream-id``. Stream 0 is the connection (CONNECT, CONNECT_ACK, PING, PROTOCOL_ERROR); each
operation the client starts gets its own stream id, and its first message names the operation in
the string header ``operation``. Application messages are JSON with ``:content-type`` and
``service-model-type`` (the Smithy shape name, which the client checks).

This module only builds and reads such messages; it is pure.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from sprig.errors import SprigError
from sprig.ipc.eventstream import Header, HeaderType, Message

VERSION: Final = "0.1.0"
CONTENT_TYPE_JSON: Final = "application/json"

H_MESSAGE_TYPE: Final = ":message-type"
H_MESSAGE_FLAGS: Final = ":message-flags"
H_STREAM_ID: Final = ":stream-id"
H_VERSION: Final = ":version"
H_CONTENT_TYPE: Final = ":content-type"
H_SERVICE_MODEL_TYPE: Final = "service-model-type"
H_OPERATION: Final = "operation"


class MessageType(enum.IntEnum):
    APPLICATION_MESSAGE = 0
    APPLICATION_ERROR = 1
    PING = 2
    PING_RESPONSE = 3
    CONNECT = 4
    CONNECT_ACK = 5
    PROTOCOL_ERROR = 6
    INTERNAL_ERROR = 7


class MessageFlag(enum.IntFlag):
    NONE = 0
    CONNECTION_ACCEPTED = 1
    TERMINATE_STREAM = 2


class RpcProtocolError(SprigError):
    """A well-framed message that breaks the RPC rules (the connection gets PROTOCOL_ERROR)."""


@dataclass(frozen=True)
class RpcMessage:
    """A decoded message with its RPC headers read and checked."""

    type: MessageType
    flags: MessageFlag
    stream_id: int
    message: Message

    @property
    def terminates(self) -> bool:
        return bool(self.flags & MessageFlag.TERMINATE_STREAM)

    def string(self, name: str) -> str | None:
        v = self.message.get(name, HeaderType.STRING)
        return v if isinstance(v, str) else None

    @property
    def payload(self) -> bytes:
        return self.message.payload


def read(message: Message) -> RpcMessage:
    """Read the RPC headers of ``message``; raises :class:`RpcProtocolError` if any is wrong."""
    values: list[int] = []
    for name in (H_MESSAGE_TYPE, H_MESSAGE_FLAGS, H_STREAM_ID):
        v = message.get(name, HeaderType.INT32)
        if not isinstance(v, int) or isinstance(v, bool):
            h = message.header(name)
            got = "missing" if h is None else f"of type {h.type.name}"
            raise RpcProtocolError(f"header {name} is {got}; allowed: an int32 header on every "
                                   "message")
        values.append(v)
    mtype, flags, stream_id = values
    try:
        t = MessageType(mtype)
    except ValueError:
        raise RpcProtocolError(f"{H_MESSAGE_TYPE} {mtype} is unknown; allowed: 0-7") from None
    if stream_id < 0:
        raise RpcProtocolError(f"{H_STREAM_ID} {stream_id} is negative; allowed: >= 0")
    return RpcMessage(t, MessageFlag(flags & 0x3), stream_id, message)


def build(mtype: MessageType, stream_id: int, *, flags: MessageFlag = MessageFlag.NONE,
          headers: tuple[Header, ...] = (), payload: bytes = b"") -> Message:
    """A message with the three RPC headers first, then ``headers``."""
    return Message((Header.int32(H_MESSAGE_TYPE, int(mtype)),
                    Header.int32(H_MESSAGE_FLAGS, int(flags)),
                    Header.int32(H_STREAM_ID, stream_id), *headers), payload)


def json_message(mtype: MessageType, stream_id: int, shape: str, body: Any, *,
                 flags: MessageFlag = MessageFlag.NONE) -> Message:
    """An APPLICATION_MESSAGE / APPLICATION_ERROR with a JSON body of Smithy shape ``shape``."""
    return build(mtype, stream_id, flags=flags,
                 headers=(Header.string(H_CONTENT_TYPE, CONTENT_TYPE_JSON),
                          Header.string(H_SERVICE_MODEL_TYPE, shape)),
                 payload=json.dumps(body, separators=(",", ":")).encode())


def protocol_error(text: str) -> Message:
    """PROTOCOL_ERROR on stream 0 with a JSON ``{"message": text}`` for whoever reads it."""
    return build(MessageType.PROTOCOL_ERROR, 0,
                 headers=(Header.string(H_CONTENT_TYPE, CONTENT_TYPE_JSON),),
                 payload=json.dumps({"message": text}).encode())
