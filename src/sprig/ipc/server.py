"""The Greengrass IPC v2 server: an asyncio Unix socket speaking event-stream RPC.

A connection goes: CONNECT (``:version`` 0.1.0, payload ``{"authToken": SVCUID}``) → CONNECT_ACK
with CONNECTION_ACCEPTED when the token belongs to a component (else an ACK without the flag, and
the connection is closed). Then each operation is a stream: the first message names it in the
``operation`` header; the server answers with the response shape (plus TERMINATE_STREAM unless
the operation is a subscription) or with an error shape + TERMINATE_STREAM. A client's
TERMINATE_STREAM on a subscription unsubscribes; a disconnect unsubscribes everything it had.

Requests of one connection are handled in arrival order (so one component's publishes reach the
bus in the order it sent them); connections are independent. A frame that breaks the framing or
the RPC rules gets PROTOCOL_ERROR and that connection is closed; the server and every other
connection carry on.

Every connection task is owned by the server: ``aclose()`` cancels and awaits them, and each
connection closes its subscriptions (whose delivery tasks the bus or bridge owns) on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from sprig.errors import SprigError, ValidationError
from sprig.ipc import rpc
from sprig.ipc.call import DEFAULT_MAX_PAYLOAD, Call, Reply
from sprig.ipc.core import (
    InvalidArgumentsError,
    IpcCore,
    IpcError,
    ServiceError,
    UnauthorizedError,
)
from sprig.ipc.eventstream import MAX_MESSAGE_LEN, Decoder, EventStreamError, Message, encode
from sprig.ipc.registry import OPERATIONS, unsupported_message
from sprig.ipc.rpc import MessageFlag, MessageType, RpcMessage, RpcProtocolError
from sprig.launcher.peers import Peer, unix_peer
from sprig.pubsub.authorization import AuthorizationError

log = logging.getLogger(__name__)

#: The socket must be connectable by every component's run-as user (ggc_user, per-component
#: users...), which are not the core's user and share no group we could rely on, so it is 0666,
#: as Greengrass's own ipc.socket is usable by all components. Connecting proves nothing: the
#: SVCUID token in CONNECT is the authentication, and it is only handed to the component it was
#: issued for (in its environment). The directory holding the socket must be searchable too.
DEFAULT_SOCKET_MODE: Final = 0o666
#: AF_UNIX path limit on Linux (sun_path is 108 bytes including the NUL).
MAX_SOCKET_PATH: Final = 107
_READ_CHUNK: Final = 64 * 1024
#: Largest frame accepted before CONNECT succeeded (a CONNECT is tiny), so an unauthenticated
#: peer cannot make the server buffer a 24 MiB frame.
PRE_CONNECT_MAX_FRAME: Final = 64 * 1024
#: A client must send CONNECT within this time, or the connection is dropped.
CONNECT_TIMEOUT: Final = 10.0
#: After refusing a token the server waits this long for the client to hang up, so the client
#: reads the ACK (and reports access denied) rather than a closed socket.
REFUSED_LINGER: Final = 2.0


class IpcServerError(SprigError):
    """The IPC server cannot start (socket path problems); the message says what to fix."""


@dataclass(frozen=True)
class _Stream:
    operation: str
    close: Callable[[], None]


def _peer(writer: asyncio.StreamWriter) -> Peer | None:
    """The connecting process (``SO_PEERCRED``)."""
    sock = writer.get_extra_info("socket")      # an asyncio TransportSocket
    return unix_peer(sock) if sock is not None else None


def _auth_token(payload: bytes) -> str | None:
    try:
        doc = json.loads(payload or b"{}")
    except ValueError:
        return None
    token = doc.get("authToken") if isinstance(doc, dict) else None
    return token if isinstance(token, str) and token else None


class _Connection:
    """One client connection: its streams, its component, its reader loop."""

    def __init__(self, server: IpcServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.core = server.core
        self.reader = reader
        self.writer = writer
        self.decoder = Decoder(max_message_len=min(server.max_frame, PRE_CONNECT_MAX_FRAME))
        self.peer_cred = _peer(writer)
        self.peer = self.peer_cred.describe() if self.peer_cred else "an unknown peer"
        self.component: str | None = None
        self.streams: dict[int, _Stream] = {}
        self.last_stream_id = 0
        self.closed = False
        self.refused = False

    # --- output ------------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(encode(message))

    def emit(self, stream_id: int, shape: str, body: Any) -> None:
        """A stream event, if the stream is still open."""
        if self.closed or stream_id not in self.streams:
            return
        self.send(rpc.json_message(MessageType.APPLICATION_MESSAGE, stream_id, shape, body))

    async def drain(self) -> None:
        if self.writer.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def done(self) -> bool:
        return self.closed or self.refused

    def read_timeout(self) -> float | None:
        if self.refused:
            return REFUSED_LINGER
        return CONNECT_TIMEOUT if self.component is None else None

    # --- input -------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self.closed:
                try:
                    chunk = await asyncio.wait_for(self.reader.read(_READ_CHUNK),
                                                   self.read_timeout())
                except TimeoutError:
                    if not self.refused:
                        log.warning("ipc: %s sent no CONNECT within %.0f s; closing",
                                    self.peer, CONNECT_TIMEOUT)
                    break
                if not chunk:
                    break
                if self.refused:
                    continue          # whatever it sends now is ignored until it hangs up
                for message in self.decoder.feed(chunk):
                    await self.handle(rpc.read(message))
                    if self.done():
                        break
        except (EventStreamError, RpcProtocolError) as e:
            log.warning("ipc: protocol error from %s (%s), closing the connection: %s",
                        self.component or "an unauthenticated client", self.peer, e)
            self.send(rpc.protocol_error(str(e)))
        except ConnectionError:
            pass
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        self.closed = True
        streams = list(self.streams.items())
        self.streams.clear()
        for sid, s in streams:
            self._close_stream(sid, s)
        if self.component is not None:
            log.info("ipc: %s (%s) disconnected; %d stream(s) closed", self.component, self.peer,
                     len(streams))
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    def _close_stream(self, sid: int, s: _Stream) -> None:
        try:
            s.close()
        except Exception:
            log.exception("ipc: closing stream %d (%s) of %s failed", sid, s.operation,
                          self.component)

    async def handle(self, m: RpcMessage) -> None:
        if self.component is None:
            if self.handle_connect(m):
                await self.server._notify()
            return
        if m.type is MessageType.PING:
            self.send(rpc.build(MessageType.PING_RESPONSE, 0, payload=m.payload))
        elif m.type is MessageType.PING_RESPONSE:
            pass
        elif m.type is MessageType.CONNECT:
            raise RpcProtocolError("CONNECT sent on a connection that is already connected")
        elif m.type not in (MessageType.APPLICATION_MESSAGE, MessageType.APPLICATION_ERROR):
            raise RpcProtocolError(f"{m.type.name} is not a message a client may send")
        elif m.stream_id == 0:
            raise RpcProtocolError(f"{m.type.name} on stream 0; allowed: a stream id > 0")
        else:
            await self.handle_stream(m)

    def handle_connect(self, m: RpcMessage) -> bool:
        """Answer CONNECT; True when the client is now authenticated."""
        if m.type is not MessageType.CONNECT or m.stream_id != 0:
            raise RpcProtocolError(f"the first message must be CONNECT on stream 0 (got "
                                   f"{m.type.name} on stream {m.stream_id})")
        version = m.string(rpc.H_VERSION)
        if version != rpc.VERSION:
            raise RpcProtocolError(f"{rpc.H_VERSION} {version!r} is not supported; allowed: "
                                   f"{rpc.VERSION!r}")
        token = _auth_token(m.payload)
        component = self.core.component_for_token(token) if token else None
        if component is None:
            log.warning("ipc: refused a connection from %s: %s", self.peer,
                        "unknown authToken" if token else "no authToken in CONNECT")
            self.send(rpc.build(MessageType.CONNECT_ACK, 0))
            self.refused = True
            return False
        stranger = self.core.verify_peer(component, self.peer_cred)
        if stranger is not None:
            log.warning("ipc: SVCUID of %s refused: presented by %s, not by a process of %s",
                        component, stranger, component)
            self.send(rpc.build(MessageType.CONNECT_ACK, 0))
            self.refused = True
            return False
        self.component = component
        self.decoder.max_message_len = self.server.max_frame
        self.send(rpc.build(MessageType.CONNECT_ACK, 0, flags=MessageFlag.CONNECTION_ACCEPTED))
        log.info("ipc: %s connected (%s)", component, self.peer)
        return True

    async def handle_stream(self, m: RpcMessage) -> None:
        sid = m.stream_id
        open_stream = self.streams.get(sid)
        if open_stream is not None:
            if m.terminates:
                del self.streams[sid]
                self._close_stream(sid, open_stream)
            # Request-stream events: no operation served here takes any; ignored.
            return
        if sid <= self.last_stream_id:
            return      # a stream that already ended (e.g. the client's close after our error)
        self.last_stream_id = sid
        operation = m.string(rpc.H_OPERATION)
        if operation is None:
            raise RpcProtocolError(f"stream {sid}: its first message has no "
                                   f"'{rpc.H_OPERATION}' string header")
        await self.dispatch(sid, operation, m)

    async def dispatch(self, sid: int, operation: str, m: RpcMessage) -> None:
        assert self.component is not None
        reply: Reply | None = None
        try:
            handler = OPERATIONS.get(operation)
            if handler is None:
                raise ServiceError(unsupported_message(operation))
            call = Call(self.component, operation, sid, self.core, self.server.max_payload,
                        emit=lambda shape, body: self.emit(sid, shape, body), drain=self.drain)
            reply = await handler(call, _request(m))
        except IpcError as e:
            self._fail(sid, operation, e)
        except AuthorizationError as e:
            self._fail(sid, operation, UnauthorizedError(str(e)))
        except ValidationError as e:
            self._fail(sid, operation, InvalidArgumentsError(str(e)))
        except SprigError as e:
            self._fail(sid, operation, ServiceError(str(e)))
        except Exception:
            log.exception("ipc: %s failed for %s", operation, self.component)
            self._fail(sid, operation, ServiceError(
                f"internal error while handling {operation}; see the core log"))
        if reply is None:
            return
        flags = MessageFlag.TERMINATE_STREAM if reply.close is None else MessageFlag.NONE
        try:
            response = encode(rpc.json_message(MessageType.APPLICATION_MESSAGE, sid, reply.shape,
                                               reply.body, flags=flags))
        except EventStreamError as e:
            if reply.close is not None:
                reply.close()
            self._fail(sid, operation, ServiceError(f"the response cannot be sent: {e}"))
            return
        if reply.close is not None:
            if self.closed:
                reply.close()
                return
            self.streams[sid] = _Stream(operation, reply.close)
        if not self.writer.is_closing():
            self.writer.write(response)
        if reply.close is not None and m.terminates:
            self._close_stream(sid, self.streams.pop(sid))

    def _fail(self, sid: int, operation: str, error: IpcError) -> None:
        log.info("ipc: %s by %s refused: %s", operation, self.component, error.message)
        self.send(rpc.json_message(MessageType.APPLICATION_ERROR, sid, error.shape, error.body(),
                                   flags=MessageFlag.TERMINATE_STREAM))


def _request(m: RpcMessage) -> dict[str, Any]:
    """The request's JSON object (an empty payload is an empty request)."""
    if not m.payload:
        return {}
    try:
        doc = json.loads(m.payload)
    except ValueError as e:
        raise InvalidArgumentsError(f"request payload: not JSON ({e}); allowed: a JSON object "
                                    "with the operation's request fields") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentsError(f"request payload: a JSON {type(doc).__name__}; allowed: a "
                                    "JSON object with the operation's request fields")
    return doc


def _prepare_socket_path(path: Path) -> None:
    """Refuse an unusable path; remove a stale socket left by a core that died."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        raise IpcServerError(f"IPC socket path {str(path)!r} is {size} bytes long; allowed: at "
                             f"most {MAX_SOCKET_PATH} bytes (AF_UNIX limit): use a shorter root "
                             "directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise IpcServerError(f"IPC socket path {str(path)!r} exists and is not a socket; "
                             "remove it or choose another root directory")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)          # stale: nobody listens
        return
    finally:
        probe.close()
    raise IpcServerError(f"another process is already serving IPC on {str(path)!r}; stop it "
                         "first (is another core running on this root?)")


class IpcServer:
    """The IPC v2 server on ``socket_path`` for ``core``. ``start()`` / ``aclose()`` or
    ``async with``. ``max_payload`` caps a published message; ``max_frame`` caps any frame."""

    def __init__(self, socket_path: Path, core: IpcCore, *,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, max_frame: int = MAX_MESSAGE_LEN,
                 socket_mode: int = DEFAULT_SOCKET_MODE) -> None:
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload < 1:
            raise ValidationError("maxPayloadBytes", "must be a positive integer",
                                  value=max_payload, allowed="an integer >= 1")
        self.socket_path = socket_path
        self.core = core
        self.max_payload = max_payload
        self.max_frame = max_frame
        self.socket_mode = socket_mode
        self._server: asyncio.Server | None = None
        self._connections: dict[_Connection, asyncio.Task[Any]] = {}
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        _prepare_socket_path(self.socket_path)
        self._server = await asyncio.start_unix_server(self._on_client,
                                                       path=str(self.socket_path))
        os.chmod(self.socket_path, self.socket_mode)
        log.info("ipc: serving Greengrass IPC on %s", self.socket_path)

    async def aclose(self) -> None:
        """Stop accepting, close every connection (and its subscriptions), remove the socket."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(self.socket_path.lstat().st_mode):
                    self.socket_path.unlink()

    async def __aenter__(self) -> IpcServer:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    @property
    def connections(self) -> int:
        return len(self._connections)

    def components(self) -> list[str]:
        """The components connected now (one entry per authenticated connection)."""
        return sorted(c.component for c in self._connections if c.component is not None)

    def open_streams(self) -> int:
        return sum(len(c.streams) for c in self._connections)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds; re-checked whenever a connection opens or ends."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[conn] = task
        try:
            await self._notify()
            await conn.run()
        finally:
            self._connections.pop(conn, None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._notify()
