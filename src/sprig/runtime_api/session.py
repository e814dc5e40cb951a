"""One worker's Runtime API endpoint: a loopback listener that serves exactly one worker.

The official clients take only ``host:port`` (``AWS_LAMBDA_RUNTIME_API``), so isolation between
workers is one listener each: a worker can only ever see its own invocations.

Use it like this (the Lambda manager does; so can a bootstrap's test)::

    session = await RuntimeSession.open(log=print)
    env["AWS_LAMBDA_RUNTIME_API"] = session.address          # "127.0.0.1:<port>"
    ... start the worker process with env ...
    await session.wait_ready(timeout=10)                     # first /next = init done
    outcome = await session.run(Job.for_payload(b'{"a": 1}', function_arn=arn, timeout_s=3))
    outcome.ok, outcome.body, outcome.error_type
    await session.aclose()

Besides the TCP listener that the official clients need, ``open(unix_path=...)`` also listens on
a Unix socket serving the same session; Sprig's own runtimes use it when
``SPRIG_RUNTIME_API_SOCKET`` names it (loopback TCP costs several times a Unix socket's round
trip on small devices). ``unix_owner`` (uid, gid) hands the socket file to the worker's user;
its mode is 0600. On that socket a connection may also speak the framed lane
(:mod:`sprig.runtime_api.frames`, chosen by its first byte), which Sprig's Python runtime does.

HTTP is :mod:`sprig.http1`'s (strict, bounded, with timeouts) with :data:`LIMITS`: a few
connections per listener (a worker needs one or two), heads up to 1 MB (AWS's clients send an
X-Ray error cause header of up to 1 MB), bodies up to ``max_response_bytes`` on the three
POST routes and none elsewhere, refused at the end of the head when declared larger. A
connection parked on ``/next`` is waiting for the core, never idle; one that sends half a
request and stalls is closed (408) after ``head_timeout_s``/``body_timeout_s``.

State machine (one invocation at a time, as the Runtime API defines it):
``INIT`` → first ``GET /next`` → ``IDLE`` (parked /next) → a job is handed out → ``BUSY`` →
``POST /response`` or ``/error`` → back to waiting for ``/next``. Out-of-order calls get
403 ``InvalidStateTransition``; posts for unknown ids 400 ``InvalidRequestID``; posts for ids
already answered (stale, e.g. after a timeout) 403. Everything refused is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

from sprig.http1 import Connection, ConnectionCap, Limits, Request, Response
from sprig.runtime_api import frames, wire

#: The HTTP limits of each Runtime API listener (see the module's docstring).
LIMITS = Limits(max_connections=8, max_head_bytes=1024 * 1024 + 64 * 1024)
#: Connections to a guarded session that may wait, unread, for :meth:`RuntimeSession.bind`.
MAX_WAITING = 64


class SessionState(enum.StrEnum):
    INIT = "INIT"            # process started, no /next yet
    IDLE = "IDLE"            # waiting for work (a /next may be parked)
    BUSY = "BUSY"            # an invocation was handed out, no answer yet
    FAILED = "FAILED"        # init error reported, or the session was aborted
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class Job:
    """One invocation as a worker receives it from ``/next``.

    ``client_context`` and ``cognito_identity`` are plain JSON text (not base64).
    """

    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    binary: bool = False
    client_context: str | None = None
    cognito_identity: str | None = None
    trace_id: str | None = None

    @classmethod
    def for_payload(cls, payload: bytes, *, function_arn: str, timeout_s: float,
                    request_id: str | None = None, binary: bool = False,
                    client_context: dict[str, Any] | None = None) -> Job:
        """A job whose deadline is ``timeout_s`` from now."""
        return cls(
            request_id=request_id or str(uuid.uuid4()),
            payload=payload,
            deadline_ms=int(time.time() * 1000 + timeout_s * 1000),
            invoked_function_arn=function_arn,
            binary=binary,
            client_context=None if client_context is None else json.dumps(client_context),
        )

    def headers(self) -> list[tuple[str, str]]:
        h = [(wire.H_REQUEST_ID, self.request_id),
             (wire.H_DEADLINE_MS, str(self.deadline_ms)),
             (wire.H_FUNCTION_ARN, self.invoked_function_arn)]
        if self.trace_id:
            h.append((wire.H_TRACE_ID, self.trace_id))
        if self.client_context is not None:
            h.append((wire.H_CLIENT_CONTEXT, self.client_context))
        if self.cognito_identity is not None:
            h.append((wire.H_COGNITO_IDENTITY, self.cognito_identity))
        return h


class OutcomeKind(enum.StrEnum):
    RESPONSE = "response"          # POST /response
    ERROR = "error"                # POST /error (a Handled function error)
    TOO_LARGE = "too_large"        # the response was over the limit: 413, worker must restart


@dataclass(frozen=True)
class Outcome:
    """What the worker answered. For ERROR/TOO_LARGE ``body`` is the JSON error document."""

    kind: OutcomeKind
    body: bytes
    error_type: str | None = None
    content_type: str = wire.CT_JSON

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.RESPONSE


@dataclass(frozen=True)
class InitError:
    """What a runtime reported on ``/init/error``."""

    error_type: str
    error_message: str
    body: bytes = b""

    def __str__(self) -> str:
        return f"{self.error_type}: {self.error_message}"


PeerCheck = Callable[[socket.socket], bool]
#: A worker's connection: HTTP, or the framed lane (which answers the same calls).
Channel = Connection | frames.FrameConnection


class _Gate(asyncio.Protocol):
    """One connection before it is served: nothing is read from it until its peer is known to
    be the worker (a guarded session), and a peer that is not is dropped without a byte of
    answer. On the Unix socket the first byte then chooses the lane (``frames_offered``): HTTP or
    :mod:`~sprig.runtime_api.frames`. The transport is then handed to that lane's protocol,
    so the gate costs nothing per message."""

    def __init__(self, session: RuntimeSession, cap: ConnectionCap,
                 frames_offered: bool) -> None:
        self.session = session
        self.cap = cap                   # counts the connection once it is admitted
        self.frames_offered = frames_offered
        self.transport: asyncio.Transport | None = None
        self.admitted = False
        self.early = b""                 # read before admission (uvloop), held until then

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (asyncio's, or uvloop's, which is not an asyncio.Transport
        # subclass but has its methods).
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.pause_reading()
        self.session._admit(self)

    def admit(self) -> None:
        assert self.transport is not None
        self.admitted = True
        if not self.frames_offered:
            self._hand_over(self.session._http(), self.early, reading=False)
        elif self.early:
            self._hand_over(self.session._lane(self.early), self.early, reading=False)
        elif not self.transport.is_closing():
            self.transport.resume_reading()

    def _hand_over(self, inner: asyncio.Protocol, data: bytes, *, reading: bool) -> None:
        assert self.transport is not None
        self.early = b""
        self.session._served(self, inner)
        self.transport.set_protocol(inner)
        inner.connection_made(self.transport)
        if not reading and not self.transport.is_closing():
            self.transport.resume_reading()      # before the data: the lane may pause again
        if data:
            inner.data_received(data)

    def refuse(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def socket(self) -> socket.socket | None:
        return None if self.transport is None else self.transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        if self.admitted:                # only a lane not chosen yet reads through the gate
            self._hand_over(self.session._lane(data), data, reading=True)
            return
        # Not admitted yet, and still read: uvloop starts reading after connection_made even
        # when the protocol paused there (asyncio does not). Nothing is parsed before the
        # peer is known: the bytes wait, bounded, and reading is paused again.
        assert self.transport is not None
        self.early += data
        if len(self.early) > LIMITS.max_head_bytes:
            self.transport.abort()
        else:
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.session._forget(self)
        if self.admitted:
            self.cap.release()           # admitted, lost before its first byte


class SessionAborted(Exception):
    """The pending invocation was abandoned (worker died, timed out or the session closed)."""


@dataclass
class _Pending:
    job: Job
    future: asyncio.Future[Outcome] | None
    on_done: Callable[[Outcome | SessionAborted], None] | None = None
    delivered: bool = False

    def settle(self, result: Outcome | SessionAborted) -> None:
        """Tell whoever waits: the future, or the callback (an outcome at once, on the loop
        iteration that read it; an abort on the next, as a future's callback would be)."""
        if self.on_done is not None:
            on_done, self.on_done = self.on_done, None
            if isinstance(result, SessionAborted):
                asyncio.get_running_loop().call_soon(on_done, result)
                return
            try:
                on_done(result)
            except Exception as e:        # as the loop reports a failing future callback
                asyncio.get_running_loop().call_exception_handler({
                    "message": "a runtime session's outcome callback failed",
                    "exception": e})
        elif self.future is not None and not self.future.done():
            if isinstance(result, SessionAborted):
                self.future.set_exception(result)
            else:
                self.future.set_result(result)


def error_document(error_type: str, message: str, stack: list[str] | None = None) -> bytes:
    """The error JSON as AWS Lambda returns it to callers."""
    doc: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if stack is not None:
        doc["stackTrace"] = stack
    return json.dumps(doc).encode()


def _normalise_error(body: bytes, header_type: str | None) -> tuple[str, bytes]:
    """Turn a runtime's /error body into ``{errorMessage, errorType, stackTrace}``.

    The Node RIC sends ``trace`` instead of ``stackTrace``; some runtimes send only the
    ``Lambda-Runtime-Function-Error-Type`` header and no body.
    """
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = {"errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(doc, dict):
        doc = {"errorMessage": json.dumps(doc)}
    if "stackTrace" not in doc and "trace" in doc:
        doc["stackTrace"] = doc.pop("trace")
    error_type = str(doc.get("errorType") or header_type or wire.FN_UNHANDLED)
    doc["errorType"] = error_type
    doc.setdefault("errorMessage", "")
    doc.pop("requestId", None)
    ordered = {"errorMessage": doc.pop("errorMessage"), "errorType": doc.pop("errorType")}
    ordered.update(doc)
    return error_type, json.dumps(ordered).encode()


def _err(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


@dataclass
class RuntimeSession:
    """The Runtime API of one worker. Create with :meth:`open`."""

    log: Callable[[str], None] = print
    max_response_bytes: int = wire.MAX_RESPONSE_BYTES
    state: SessionState = SessionState.INIT
    init_error: InitError | None = None
    address: str = ""
    unix_path: str | None = None
    _server: asyncio.Server | None = None
    _unix_server: asyncio.Server | None = None
    _conns: dict[Channel, ConnectionCap] = field(default_factory=dict)
    _parked: Channel | None = None
    _pending: _Pending | None = None
    _done_ids: deque[str] = field(default_factory=lambda: deque(maxlen=64))
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _failed: asyncio.Event = field(default_factory=asyncio.Event)
    invocations: int = 0
    #: Guarded sessions serve only the peers their check admits (see :meth:`bind`).
    guarded: bool = False
    _check: PeerCheck | None = None
    _waiting: list[_Gate] = field(default_factory=list)
    _gates: set[_Gate] = field(default_factory=set)
    _caps: list[ConnectionCap] = field(default_factory=list)
    limits: Limits = LIMITS

    @classmethod
    async def open(cls, *, log: Callable[[str], None] = print,
                   max_response_bytes: int = wire.MAX_RESPONSE_BYTES,
                   unix_path: str | None = None,
                   unix_owner: tuple[int, int] | None = None,
                   guarded: bool = False, tcp: bool = True) -> RuntimeSession:
        """Start a listener on 127.0.0.1 with a free port; ``address`` is ``host:port``.

        ``tcp=False`` (with a ``unix_path``): the Unix socket only, ``address`` is empty — for
        runtimes that never use TCP (Sprig's Python and Node.js runtimes), so their worker has
        no port any process of the device could reach.

        ``guarded``: serve only connections that the check given to :meth:`bind` admits
        (connections arriving before that wait, unread). Any process of the device can reach a
        loopback port or find a socket path: the Lambda manager binds each session to its
        worker's processes, so no other process gets an invocation or a chance to answer one.
        """
        if not tcp and unix_path is None:
            raise ValueError("a Runtime API session needs a TCP listener or a Unix socket")
        self = cls(log=log, max_response_bytes=max_response_bytes, guarded=guarded)
        loop = asyncio.get_running_loop()
        if tcp:
            cap = self._cap("Runtime API (TCP)")
            # A socket bound here rather than a host name: create_server would resolve
            # "127.0.0.1" with getaddrinfo in a thread, ~0.5 ms of every worker's cold start.
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", 0))
                self._server = await loop.create_server(
                    lambda: self._new_connection(cap, False), sock=listener)
            except BaseException:
                listener.close()
                raise
            port = self._server.sockets[0].getsockname()[1]
            self.address = f"127.0.0.1:{port}"
        if unix_path is not None:
            unix = self._cap("Runtime API (Unix socket)")
            try:
                self._unix_server = await loop.create_unix_server(
                    lambda: self._new_connection(unix, True), unix_path)
                os.chmod(unix_path, 0o600)
                if unix_owner is not None:
                    os.chown(unix_path, *unix_owner)
            except BaseException:
                await self.aclose()
                raise
            self.unix_path = unix_path
        return self

    def _cap(self, name: str) -> ConnectionCap:
        cap = ConnectionCap(name, self.limits.max_connections, self.log)
        self._caps.append(cap)
        return cap

    # -- the manager's side ----------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once the runtime asked for its first invocation (init finished)."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the first ``/next``.

        Raises:
            InitFailedError: the runtime posted ``/init/error`` (or the session was aborted).
            TimeoutError: no ``/next`` within ``timeout``.
        """
        if not self._ready.is_set() and not self._failed.is_set():
            waiters = [asyncio.ensure_future(self._ready.wait()),
                       asyncio.ensure_future(self._failed.wait())]
            try:
                done, _ = await asyncio.wait(waiters, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if not done:
                raise TimeoutError("the runtime did not ask for an invocation in time")
        if self.init_error is not None:
            raise InitFailedError(self.init_error)
        if not self._ready.is_set():
            raise InitFailedError(InitError("Runtime.ExitError", "the worker stopped during init"))

    async def failed(self) -> None:
        """Return when the session failed (init error or abort)."""
        await self._failed.wait()

    def submit(self, job: Job) -> asyncio.Future[Outcome]:
        """Hand ``job`` to the worker (now if it is parked on /next, else on its next /next).

        The future resolves with the worker's :class:`Outcome`, or fails with
        :class:`SessionAborted` via :meth:`abort`. Only one job may be outstanding.
        """
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._submit(_Pending(job, fut))
        return fut

    def submit_with(self, job: Job,
                    on_done: Callable[[Outcome | SessionAborted], None]) -> None:
        """:meth:`submit` with a callback instead of a future: ``on_done`` gets the
        :class:`Outcome` synchronously, from the read that brought the worker's answer (no
        future, no extra loop iteration: the hot path of every invocation), or a
        :class:`SessionAborted` on the next loop iteration after :meth:`abort`."""
        self._submit(_Pending(job, None, on_done))

    def _submit(self, pending: _Pending) -> None:
        if self._pending is not None:
            raise RuntimeError("a job is already outstanding on this worker")
        if self.state in (SessionState.FAILED, SessionState.CLOSED):
            raise SessionAborted(f"the worker's runtime session is {self.state}")
        self._pending = pending
        if self._parked is not None:
            conn, self._parked = self._parked, None
            self._deliver(conn)

    async def run(self, job: Job) -> Outcome:
        """:meth:`submit` and wait for the outcome (callers add their own timeout)."""
        return await self.submit(job)

    def abort(self, reason: str) -> None:
        """Abandon the outstanding job (if any) and refuse further work: the worker is gone."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._done_ids.append(pending.job.request_id)
            pending.settle(SessionAborted(reason))
        if self.state is not SessionState.CLOSED:
            self.state = SessionState.FAILED
        self._failed.set()

    async def aclose(self) -> None:
        """Stop listening and drop the worker's connections."""
        self.abort("the runtime session closed")
        self.state = SessionState.CLOSED
        servers = [s for s in (self._server, self._unix_server) if s is not None]
        for server in servers:
            server.close()
        for cap in self._caps:
            cap.flush()
        for conn in list(self._conns):
            conn.close()
        for gate in list(self._gates):         # not served yet (unchecked, or no byte yet)
            gate.refuse()
        for server in servers:
            await server.wait_closed()
        if self.unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)

    def bind(self, check: PeerCheck) -> None:
        """Admit from now on only the connections whose socket ``check`` accepts (it logs its
        refusals); connections that arrived before are judged now.

        Only admitted connections (the worker's own) count against a listener's connection
        cap, so no other process can use up the worker's room; up to :data:`MAX_WAITING`
        connections may wait for the check, more are closed at once."""
        self._check = check
        waiting, self._waiting = self._waiting, []
        for gate in waiting:
            self._admit(gate)

    def _admit(self, gate: _Gate) -> None:
        if self.state is SessionState.CLOSED:
            gate.refuse()
            return
        if not self.guarded:
            if gate.cap.admit():
                gate.admit()
            else:
                gate.refuse()
            return
        if self._check is None:
            if len(self._waiting) < MAX_WAITING:
                self._waiting.append(gate)
            else:
                gate.refuse()
            return
        sock = gate.socket()
        if sock is not None and self._check(sock) and gate.cap.admit():
            gate.admit()
        else:
            gate.refuse()

    def _forget(self, gate: _Gate) -> None:
        self._gates.discard(gate)
        if gate in self._waiting:
            self._waiting.remove(gate)

    def _served(self, gate: _Gate, inner: asyncio.Protocol) -> None:
        """``gate``'s connection is now ``inner``'s (a channel counted against its cap)."""
        self._forget(gate)
        self._conns[cast(Channel, inner)] = gate.cap

    # -- the worker's side (HTTP: sprig.http1.Server; frames: the on_frame_* calls) ------
    def _new_connection(self, cap: ConnectionCap, frames_offered: bool) -> asyncio.Protocol:
        if not self.guarded and not frames_offered:
            return cap.protocol(lambda: self._accept(cap))
        gate = _Gate(self, cap, frames_offered)
        self._gates.add(gate)
        return gate

    def _accept(self, cap: ConnectionCap) -> Connection:
        conn = self._http()
        self._conns[conn] = cap
        return conn

    def _http(self) -> Connection:
        return Connection(self, self.limits)

    def _lane(self, first: bytes) -> asyncio.Protocol:
        """The protocol a connection speaks, from its first bytes."""
        if first[:1] == frames.PREFACE[:1]:
            return frames.FrameConnection(self, self.limits.max_head_bytes,
                                          self.max_response_bytes)
        return self._http()

    def on_lost(self, conn: Channel) -> None:
        cap = self._conns.pop(conn, None)
        if cap is not None:
            cap.release()
        if self._parked is conn:
            self._parked = None

    def on_head(self, conn: Connection, head: Request) -> int | Response:
        """Bodies are read on the three POST routes only, up to ``max_response_bytes``."""
        return self.max_response_bytes if head.method == "POST" else 0

    def on_error(self, status: int, reason: str) -> Response:
        error_type = wire.ERR_BAD_REQUEST if status == 400 else \
            HTTPStatus(status).phrase.replace(" ", "")
        return Response(status, _err(error_type, reason))

    def on_request(self, conn: Connection, req: Request) -> None:
        path = req.target.split("?", 1)[0]
        if req.truncated and not (req.method == "POST" and path.endswith(wire.SUFFIX_RESPONSE)):
            self._refuse(conn, 413, wire.ERR_TOO_LARGE,
                         f"{req.method} {path}: a body of {req.size} bytes is over the "
                         f"{req.limit} bytes allowed")
        elif path == wire.PATH_NEXT and req.method == "GET":
            self._next(conn)
        elif path.startswith(wire.INVOCATION_PREFIX) and req.method == "POST":
            rest = path[len(wire.INVOCATION_PREFIX):]
            if rest.endswith(wire.SUFFIX_RESPONSE):
                self._response(conn, req, rest[:-len(wire.SUFFIX_RESPONSE)])
            elif rest.endswith(wire.SUFFIX_ERROR):
                self._error(conn, req, rest[:-len(wire.SUFFIX_ERROR)])
            else:
                self._refuse(conn, 404, wire.ERR_NOT_FOUND, f"no such path: {req.method} {path}")
        elif path == wire.PATH_INIT_ERROR and req.method == "POST":
            self._init_error(conn, req)
        else:
            self._refuse(conn, 404, wire.ERR_NOT_FOUND, f"no such path: {req.method} {path}")

    def on_frame_next(self, conn: frames.FrameConnection) -> None:
        self._next(conn)

    def on_frame_answer(self, conn: frames.FrameConnection, response: bool, request_id: str,
                        req: Request) -> None:
        """``R``/``E``: the answer, then (unless it was refused) the next ``/next``."""
        if req.truncated and not response:
            self._refuse(conn, 413, wire.ERR_TOO_LARGE,
                         f"an error of {req.size} bytes is over the {req.limit} bytes allowed")
            return
        if response:
            self._response(conn, req, request_id)
        else:
            self._error(conn, req, request_id)
        if not conn.closed:
            self._next(conn)

    def on_frame_init_error(self, conn: frames.FrameConnection, req: Request) -> None:
        self._init_error(conn, req)

    def _refuse(self, conn: Channel, status: int, error_type: str, message: str) -> None:
        self.log(f"runtime API refused a request: {status} {error_type}: {message}")
        conn.respond(status, _err(error_type, message))

    def _transition_error(self, conn: Channel, what: str) -> None:
        self._refuse(conn, 403, wire.ERR_INVALID_STATE,
                     f"State transition from {self.state} to {what} failed for runtime. "
                     "Error: State transition is not allowed")

    def _next(self, conn: Channel) -> None:
        if self.state in (SessionState.FAILED, SessionState.CLOSED):
            conn.respond(500, _err(wire.ERR_CONTAINER, wire.CONTAINER_ERROR_MESSAGE))
            return
        if self.state is SessionState.BUSY or self._parked is not None:
            self._transition_error(conn, "InvocationNext")
            return
        self.state = SessionState.IDLE
        self._ready.set()
        if self._pending is not None and not self._pending.delivered:
            self._deliver(conn)
        else:
            self._parked = conn

    def _deliver(self, conn: Channel) -> None:
        assert self._pending is not None
        job = self._pending.job
        self._pending.delivered = True
        self.state = SessionState.BUSY
        self.invocations += 1
        conn.respond(200, job.payload,
                     content_type=wire.CT_BINARY if job.binary else wire.CT_JSON,
                     headers=job.headers())

    def _check_id(self, conn: Channel, request_id: str, what: str) -> _Pending | None:
        """The outstanding job if ``request_id`` names it; else answer 403 (stale) or 400."""
        pending = self._pending
        if pending is not None and pending.delivered and pending.job.request_id == request_id:
            return pending
        if request_id in self._done_ids:
            self._transition_error(conn, what)          # already answered or abandoned
        else:
            self._refuse(conn, 400, wire.ERR_INVALID_REQUEST_ID,
                         f"Invalid request ID: {request_id!r}")
        return None

    def _finish(self, pending: _Pending, outcome: Outcome) -> None:
        self._pending = None
        self._done_ids.append(pending.job.request_id)
        self.state = SessionState.IDLE
        pending.settle(outcome)

    def _response(self, conn: Channel, req: Request, request_id: str) -> None:
        pending = self._check_id(conn, request_id, "InvocationResponse")
        if pending is None:
            return
        if req.truncated:
            message = wire.too_large_message(None if req.length is None else req.size)
            self._refuse(conn, 413, wire.ERR_TOO_LARGE, wire.too_large_message())
            self._finish(pending, Outcome(OutcomeKind.TOO_LARGE,
                                          error_document(wire.FN_RESPONSE_TOO_LARGE, message),
                                          wire.FN_RESPONSE_TOO_LARGE))
            return
        conn.respond(202, wire.STATUS_OK_BODY)
        ctype = req.headers.get("content-type", wire.CT_JSON)
        self._finish(pending, Outcome(OutcomeKind.RESPONSE, req.body, None, ctype))

    def _error(self, conn: Channel, req: Request, request_id: str) -> None:
        pending = self._check_id(conn, request_id, "InvocationErrorResponse")
        if pending is None:
            return
        conn.respond(202, wire.STATUS_OK_BODY)
        error_type, doc = _normalise_error(req.body[:wire.MAX_RESPONSE_BYTES],
                                           req.headers.get(wire.H_FUNCTION_ERROR_TYPE))
        self._finish(pending, Outcome(OutcomeKind.ERROR, doc, error_type))

    def _init_error(self, conn: Channel, req: Request) -> None:
        if self.state is not SessionState.INIT:
            self._transition_error(conn, "InitError")
            return
        conn.respond(202, wire.STATUS_OK_BODY)
        error_type, doc = _normalise_error(req.body, req.headers.get(wire.H_FUNCTION_ERROR_TYPE))
        message = str(json.loads(doc).get("errorMessage", ""))
        self.init_error = InitError(error_type, message, doc)
        self.log(f"runtime init failed: {error_type}: {message}")
        self.abort(f"init failed: {error_type}: {message}")


class InitFailedError(Exception):
    """The runtime could not initialise (``/init/error``, or it exited before its first /next)."""

    def __init__(self, error: InitError) -> None:
        self.error = error
        super().__init__(str(error))
