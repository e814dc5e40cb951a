"""The RPC protocol from a raw socket: handshake rules, PING, stream rules, malformed frames.

Malformed input must end only the offending connection (with PROTOCOL_ERROR), never the server
or another client, which is checked with a real awsiotsdk client connected throughout.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from sprig.ipc import rpc
from sprig.ipc._tests.conftest import DictCore, pubsub_policy
from sprig.ipc.eventstream import Decoder, Header, Message, encode
from sprig.ipc.rpc import MessageFlag, MessageType, RpcMessage
from sprig.ipc.server import IpcServer, IpcServerError


class Raw:
    """A raw event-stream connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = Decoder()
        self.pending: list[RpcMessage] = []

    @classmethod
    async def open(cls, path: Path) -> Raw:
        return cls(*await asyncio.open_unix_connection(str(path)))

    def send(self, data: bytes | Message) -> None:
        self.writer.write(data if isinstance(data, bytes) else encode(data))

    async def recv(self) -> RpcMessage | None:
        """The next message, or None at EOF."""
        while not self.pending:
            chunk = await asyncio.wait_for(self.reader.read(65536), 5)
            if not chunk:
                return None
            self.pending.extend(rpc.read(m) for m in self.decoder.feed(chunk))
        return self.pending.pop(0)

    async def connect(self, token: str) -> RpcMessage | None:
        self.send(rpc.build(MessageType.CONNECT, 0,
                            headers=(Header.string(":version", "0.1.0"),),
                            payload=json.dumps({"authToken": token}).encode()))
        return await self.recv()

    async def call(self, sid: int, operation: str, body: Any, *,
                   flags: MessageFlag = MessageFlag.NONE) -> RpcMessage | None:
        m = rpc.json_message(MessageType.APPLICATION_MESSAGE, sid, operation + "Request", body,
                             flags=flags)
        self.send(Message((*m.headers, Header.string("operation", operation)), m.payload))
        return await self.recv()

    async def expect_protocol_error(self) -> str:
        m = await self.recv()
        if m is not None and m.type is MessageType.CONNECT_ACK:
            m = await self.recv()             # the frames began with a good CONNECT
        assert m is not None and m.type is MessageType.PROTOCOL_ERROR, m
        assert await self.recv() is None          # and the server hung up
        text: str = json.loads(m.payload)["message"]
        return text

    def close(self) -> None:
        self.writer.close()


def connect_msg(version: str = "0.1.0", payload: bytes = b'{"authToken": "tok"}') -> Message:
    return rpc.build(MessageType.CONNECT, 0, headers=(Header.string(":version", version),),
                     payload=payload)


async def test_handshake_ping_streams_and_malformed_frames(server: IpcServer, core: DictCore,
                                                           drivers: Any) -> None:
    core.add("com.ok", "tok", {"accessControl": pubsub_policy("com.ok", ["*"], ["*"])})
    good = await drivers(server.socket_path, "tok")
    gsub = await good("subscribe", topic="alive")

    # Accepted handshake, PING, a request-response stream and a subscription stream.
    r = await Raw.open(server.socket_path)
    ack = await r.connect("tok")
    assert ack is not None and ack.type is MessageType.CONNECT_ACK
    assert ack.flags & MessageFlag.CONNECTION_ACCEPTED and ack.stream_id == 0
    r.send(rpc.build(MessageType.PING, 0, payload=b"hi"))
    pong = await r.recv()
    assert pong is not None and pong.type is MessageType.PING_RESPONSE and pong.payload == b"hi"
    resp = await r.call(1, "aws.greengrass#PublishToTopic", {
        "topic": "alive", "publishMessage": {"jsonMessage": {"message": {"raw": 1}}}})
    assert resp is not None and resp.type is MessageType.APPLICATION_MESSAGE
    assert resp.terminates and resp.stream_id == 1
    assert resp.string(":content-type") == "application/json"
    assert resp.string("service-model-type") == "aws.greengrass#PublishToTopicResponse"
    resp = await r.call(2, "aws.greengrass#SubscribeToTopic", {"topic": "alive"})
    assert resp is not None and not resp.terminates
    assert json.loads(resp.payload) == {"topicName": "alive"}
    await good("publish_json", topic="alive", message=2)
    ev = await r.recv()
    assert ev is not None and ev.stream_id == 2
    assert ev.string("service-model-type") == "aws.greengrass#SubscriptionResponseMessage"
    assert json.loads(ev.payload)["jsonMessage"] == {"message": 2, "context": {"topic": "alive"}}
    # Errors: a bad request body; an unknown operation; a stream id reused after it ended.
    resp = await r.call(3, "aws.greengrass#PublishToTopic", {"topic": "alive"})
    assert resp is not None and resp.type is MessageType.APPLICATION_ERROR and resp.terminates
    assert resp.string("service-model-type") == "aws.greengrass#InvalidArgumentsError"
    assert "publishMessage" in json.loads(resp.payload)["message"]
    resp = await r.call(4, "aws.greengrass#Nope", {})
    assert resp is not None and resp.string("service-model-type") == "aws.greengrass#ServiceError"
    msg = json.loads(resp.payload)["message"]
    assert "aws.greengrass#Nope" in msg and "SubscribeToConfigurationUpdate" in msg
    r.send(rpc.json_message(MessageType.APPLICATION_MESSAGE, 3, "x", {}))   # ended: ignored
    # The client ends the subscription: unsubscribed at once.
    assert len(core.bus.subscriptions("com.ok")) == 2
    r.send(rpc.build(MessageType.APPLICATION_MESSAGE, 2, flags=MessageFlag.TERMINATE_STREAM))
    r.send(rpc.build(MessageType.PING, 0))
    pong = await r.recv()
    assert pong is not None and pong.type is MessageType.PING_RESPONSE
    assert len(core.bus.subscriptions("com.ok")) == 1
    # A new stream without an operation header breaks the protocol.
    r.send(rpc.json_message(MessageType.APPLICATION_MESSAGE, 9, "x", {}))
    assert "no 'operation'" in await r.expect_protocol_error()
    r.close()

    async def bad(*frames: bytes | Message) -> str:
        raw = await Raw.open(server.socket_path)
        for f in frames:
            raw.send(f)
        try:
            return await raw.expect_protocol_error()
        finally:
            raw.close()

    good_connect = encode(connect_msg())
    corrupt = bytearray(good_connect)
    corrupt[-1] ^= 0xFF
    assert "CRC" in await bad(b"\x00" * 12)                          # prelude CRC 0 ≠ crc(0s)
    assert "message CRC mismatch" in await bad(bytes(corrupt))
    assert "first message must be CONNECT" in await bad(rpc.build(MessageType.PING, 0))
    assert ":version '9.9.9'" in await bad(connect_msg("9.9.9"))
    assert ":message-type" in await bad(Message((Header.string("x", "y"),)))
    assert "already connected" in await bad(good_connect, connect_msg())
    assert "stream 0" in await bad(good_connect, rpc.json_message(
        MessageType.APPLICATION_MESSAGE, 0, "x", {}))
    assert "CONNECT_ACK is not a message" in await bad(good_connect, rpc.build(
        MessageType.CONNECT_ACK, 5))
    big = rpc.build(MessageType.CONNECT, 0, payload=b"x" * 70_000)   # before CONNECT: 64 KiB
    assert "total_len: out of range" in await bad(big)
    # A frame cut in half, then the peer disappears: no error, just cleanup.
    half = await Raw.open(server.socket_path)
    half.send(good_connect[:7])
    half.close()

    # Refused token: an ACK without the accepted flag, nothing served afterwards.
    refused = await Raw.open(server.socket_path)
    ack = await refused.connect("wrong")
    assert ack is not None and ack.type is MessageType.CONNECT_ACK and ack.flags == 0
    refused.send(rpc.build(MessageType.PING, 0))
    refused.close()

    # Through all of it the real client kept working.
    await good("publish_json", topic="alive", message="still")
    events = await good.events(gsub, 3)
    assert [e["json"] for e in events] == [{"raw": 1}, 2, "still"]
    await server.wait_until(lambda: server.components() == ["com.ok"], 5)
    await good.close()


async def test_socket_path_rules(sock_dir: Path, core: DictCore) -> None:
    path = sock_dir / "ipc.socket"
    async with IpcServer(path, core) as s:
        assert path.stat().st_mode & 0o777 == 0o666
        with pytest.raises(IpcServerError, match="already serving IPC"):
            await IpcServer(path, core).start()
        assert s.connections == 0
    # A stale socket file (nobody listening) is replaced.
    import socket
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    async with IpcServer(path, core):
        r = await Raw.open(path)
        r.close()
    path.write_text("not a socket")
    with pytest.raises(IpcServerError, match="is not a socket"):
        await IpcServer(path, core).start()
    with pytest.raises(IpcServerError, match="at most 107 bytes"):
        await IpcServer(sock_dir / ("x" * 120), core).start()


async def test_silent_client_is_dropped(server: IpcServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import sprig.ipc.server as server_module
    monkeypatch.setattr(server_module, "CONNECT_TIMEOUT", 0.2)
    r = await Raw.open(server.socket_path)
    assert await r.recv() is None                 # closed by the server, nothing sent
    await server.wait_until(lambda: server.connections == 0, 5)
    r.close()
