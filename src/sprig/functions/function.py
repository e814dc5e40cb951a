"""One Lambda function at run time: its queue, its workers and how each invocation ends.

:class:`Function` executes the decisions of the pure :class:`~sprig.functions.pool.Pool`
(start a worker, dispatch, reap) and turns what happened into AWS's results:

* success → the handler's payload; a handler exception → ``Handled`` with its
  ``errorType``/``errorMessage``/``stackTrace``;
* past ``timeoutInSeconds`` → the worker is killed, ``Unhandled`` ``Sandbox.Timeout``
  ("Task timed out after 3.00 seconds"); the next invocation gets a fresh worker;
* the process ended → ``Unhandled`` ``Runtime.ExitError`` with the exit reason, or
  ``Runtime.OutOfMemory`` naming the memory limit; an oversize response → ``Unhandled``
  ``Function.ResponseSizeTooLarge`` and a new worker.

For a pinned function a crash, a timeout or a failed init calls ``on_fatal(reason)`` so the
kernel can mark the component ERRORED (and restart it with :meth:`stop` / :meth:`start`).
Log lines (the worker's stdout/stderr and START/END/REPORT) go to ``log(stream, line)`` where
``stream`` is ``"stdout"``, ``"stderr"`` or ``"sprig"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sprig.disk import DiskFull, disk_full_error, is_disk_full
from sprig.errors import LaunchError
from sprig.functions import errors, results
from sprig.functions.durable import EventJournal
from sprig.functions.invocation import (
    EVENT_PAYLOAD_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    FunctionErrorKind,
    Invocation,
    InvocationResult,
    InvocationType,
)
from sprig.functions.pool import Dispatch, Pool, StartWorker, StopWorker, WorkerState
from sprig.functions.runtimes import ResolvedRuntime
from sprig.functions.stats import InvocationStats
from sprig.functions.worker import FunctionSpec, Worker, WorkerExited, WorkerTimeout
from sprig.lambda_params import PayloadEncoding
from sprig.runtime_api import Job, Outcome, error_document

LogSink = Callable[[str, str], None]
LOG_TAIL_BYTES = 4096


class FunctionState(enum.StrEnum):
    NEW = "NEW"
    RUNNING = "RUNNING"
    FAILED = "FAILED"        # pinned worker failed; waiting for the kernel to restart us
    STOPPED = "STOPPED"


@dataclass(eq=False)
class _Item:
    invocation: Invocation
    future: asyncio.Future[InvocationResult] | None
    want_tail: bool
    durable: bool = False            # stored in the event journal until it finished
    tail: list[str] = field(default_factory=list)
    tail_size: int = 0

    def add_line(self, line: str) -> None:
        if self.want_tail:
            self.tail.append(line)
            self.tail_size += len(line) + 1
            while self.tail_size > 2 * LOG_TAIL_BYTES and len(self.tail) > 1:
                self.tail_size -= len(self.tail.pop(0)) + 1

    def tail_bytes(self) -> bytes:
        return "\n".join(self.tail).encode()[-LOG_TAIL_BYTES:] if self.want_tail else b""


def _noop_log(stream: str, line: str) -> None:
    pass


#: How long a log tail waits for the lines the worker wrote before answering (they are in
#: its pipes already: this bounds only a reader that is stuck).
TAIL_OUTPUT_WAIT_S = 1.0


def _disk_full_cause(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT error behind ``exc`` (itself, or what it was raised from)."""
    seen: BaseException | None = exc
    for _ in range(8):                  # a chain is short; a cycle must not loop for ever
        if seen is None:
            break
        if isinstance(seen, OSError) and is_disk_full(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Function:
    """A deployed Lambda function. ``runtime`` defaults to :func:`resolve` (may raise
    ValidationError), which may build Java's runtime jar: on the event loop use
    :meth:`create`, which resolves it in a thread. ``init_timeout_s`` bounds a worker's init."""

    def __init__(self, spec: FunctionSpec, *, log: LogSink = _noop_log,
                 on_fatal: Callable[[str], None] | None = None,
                 runtime: ResolvedRuntime | None = None, init_timeout_s: float = 60.0) -> None:
        self.spec = spec
        self.runtime = runtime or spec.resolve_runtime()
        self.log = log
        self.on_fatal = on_fatal
        self.init_timeout_s = init_timeout_s
        self.state = FunctionState.NEW
        self.event_drops = 0
        #: where acknowledged Event invocations are stored (set by the FunctionManager);
        #: None: they live in memory only
        self.events: EventJournal | None = None
        self._durable_ids: set[str] = set()      # stored events now queued or running
        self._storing = 0                        # events being stored: they hold queue room
        self.log_failures = 0
        self.stats = InvocationStats()
        cfg = spec.config
        self._pool: Pool[_Item] = Pool(spec.component_name, cfg.pinned, cfg.max_instances,
                                       cfg.max_queue_size, cfg.max_idle_s, paused=True,
                                       min_instances=cfg.min_instances)
        self._workers: dict[str, Worker] = {}
        self._generation: dict[str, int] = {}
        self._gen = 0
        self._busy: dict[str, _Item] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._ready_waiter: asyncio.Future[None] | None = None
        self._sockets: Path | None = None
        if self.runtime.warning:
            self._say("sprig", f"WARNING: {self.runtime.warning}")

    @classmethod
    async def create(cls, spec: FunctionSpec, *, log: LogSink = _noop_log,
                     on_fatal: Callable[[str], None] | None = None,
                     init_timeout_s: float = 60.0) -> Function:
        """The constructor for code on the event loop: resolves the runtime in a thread.

        Why: resolving a Java runtime builds Sprig's runtime jar with javac the first time
        (seconds); on the loop that would stall every other function, IPC client and
        deployment meanwhile. Raises what the constructor raises (ValidationError).
        """
        runtime = await asyncio.to_thread(spec.resolve_runtime)
        return cls(spec, log=log, on_fatal=on_fatal, runtime=runtime,
                   init_timeout_s=init_timeout_s)

    def _socket_dir(self) -> Path:
        """A directory for the workers' Unix sockets (random name). Mode 0755 so a run-as user
        can reach it (and the launcher can mount it); each socket is 0600 and owned by its
        worker's user, so no one else can connect."""
        if self._sockets is None or not self._sockets.is_dir():
            parent = self.spec.socket_root
            # <parent>/<8>/<16>.sock must fit in sun_path (108 bytes); else the system's /tmp
            if parent is None or len(str(parent)) > 70 or not parent.is_dir():
                parent = None
            self._sockets = Path(tempfile.mkdtemp(prefix="sprig-rapi-" if parent is None
                                                  else "", dir=parent))
            self._sockets.chmod(0o755)
        return self._sockets

    def _say(self, stream: str, line: str) -> None:
        """Log through the sink; a failing sink never fails or wedges an invocation.

        Why: the sink writes the component's log file, and a line that cannot be written
        (a full disk, an I/O error) once left a worker marked busy with nothing dispatched.
        """
        try:
            self.log(stream, line)
        except Exception:
            self.log_failures += 1

    @property
    def name(self) -> str:
        return self.spec.component_name

    @property
    def warning(self) -> str | None:
        """The runtime substitution warning (for ``component details``), if any."""
        return self.runtime.warning

    @property
    def pool(self) -> Pool[_Item]:
        return self._pool

    def __repr__(self) -> str:
        return f"<Function {self.name} {self.state}: {self._pool!r}>"

    def details(self) -> dict[str, object]:
        """A JSON-able summary for ``component details`` / ``sprig status``."""
        p = self._pool
        return {
            "function": self.spec.function_arn, "runtime": self.spec.runtime,
            "runtimeWarning": self.warning, "state": self.state.value,
            "pinned": p.pinned, "queued": len(p.queue), "maxQueueSize": p.max_queue_size,
            "workers": {s.value: p.count(s) for s in WorkerState},
            "maxInstancesCount": p.limit, "minInstancesCount": p.min_instances,
            "droppedInvocations": p.dropped,
            "droppedEvents": self.event_drops, "storedEvents": len(self._durable_ids),
        }

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Accept invocations; a pinned function starts its worker and waits for its init.

        Stored Event invocations of this function (acknowledged before a crash or a stop) are
        queued first, oldest first, with their request ids.

        Raises:
            FunctionInitError: the pinned worker failed init (type and message as AWS's).
        """
        await self._load_stored_events()
        self.state = FunctionState.RUNNING
        self._pool.paused = False
        self._pool.prestart_paused = False
        if self.spec.config.pinned or self.spec.config.min_instances:
            await self._wait_ready()
        else:
            self._kick()

    async def _load_stored_events(self) -> None:
        if self.events is None:
            return
        try:
            stored = await self.events.pending(self.name)
        except Exception as e:
            # They stay stored: the next start of this function tries again.
            self._say("sprig", f"cannot read the stored Event invocations: {e}")
            return
        loaded = 0
        for inv in stored:
            if inv.request_id not in self._durable_ids:
                self._durable_ids.add(inv.request_id)
                self._pool.queue.append(_Item(inv, None, False, durable=True))
                loaded += 1
        if loaded:
            self._say("sprig", f"{loaded} stored Event invocation(s) queued again (acknowledged "
                               "before the last stop or crash)")

    def _ready_count(self) -> int:
        ready = (WorkerState.IDLE, WorkerState.BUSY)
        return sum(1 for wid, slot in self._pool.workers.items()
                   if slot.state in ready and self._generation.get(wid) == self._gen)

    def _wanted_ready(self) -> int:
        """Workers that must be up before a (re)start counts as done: the pinned one, or
        the ``minInstancesCount`` pre-started ones (so that the first invocation after a
        deployment finds them warm)."""
        return 1 if self.spec.config.pinned else self.spec.config.min_instances

    async def _wait_ready(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._ready_waiter = waiter
        self._kick()
        if self._ready_count() >= self._wanted_ready():
            waiter.set_result(None)                         # current workers are already up
        try:
            await waiter
        finally:
            self._ready_waiter = None

    async def stop(self) -> None:
        """Stop every worker; queued invocations fail with FunctionNotRunnable."""
        self.state = FunctionState.STOPPED
        self._pool.paused = True
        if self._timer is not None:
            self._timer.cancel()
        if self._ready_waiter is not None and not self._ready_waiter.done():
            self._ready_waiter.set_exception(
                errors.FunctionNotRunnable(f"function {self.name} stopped while starting"))
        for item in self._pool.take_all():
            self._fail(item, errors.FunctionNotRunnable(f"function {self.name} stopped"))
        # Tasks first (a start in progress registers its worker only when spawned; retiring
        # is shielded), then every worker that is left.
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        workers = list(self._workers.values())
        self._workers.clear()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        for w in workers:
            self._pool.worker_gone(w.id)
        for item in list(self._busy.values()):
            self._fail(item, errors.FunctionNotRunnable(f"function {self.name} stopped"))
        self._busy.clear()
        self._durable_ids.clear()       # what was not finished stays stored
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None

    async def reconfigure(self, spec: FunctionSpec) -> None:
        """Apply a new spec; workers started with the old one are replaced when needed
        (idle ones now, busy ones after their invocation). Raises ValidationError first.
        The runtime is resolved in a thread (a new Java runtime may build its jar: see
        :meth:`create`)."""
        runtime = await asyncio.to_thread(spec.resolve_runtime)
        old = self.spec
        restart = (old.config.needs_restart(spec.config)
                   or dataclasses.replace(old, config=spec.config) != spec)
        self.spec, self.runtime = spec, runtime
        cfg = spec.config
        p = self._pool
        p.pinned, p.max_instances, p.max_queue_size, p.max_idle_s = (
            cfg.pinned, cfg.max_instances, cfg.max_queue_size, cfg.max_idle_s)
        p.min_instances, p.prestart_paused = cfg.min_instances, False
        if not restart:
            if self.state is FunctionState.RUNNING and self._ready_count() < cfg.min_instances:
                await self._wait_ready()
            else:
                self._kick()
            return
        self._say("sprig", "configuration changed: replacing workers")
        self._gen += 1
        for wid, slot in list(p.workers.items()):
            if slot.state is WorkerState.IDLE:
                slot.state = WorkerState.STOPPING
                self._spawn(self._stop_worker(wid, "configuration changed"))
        if self.state is FunctionState.RUNNING and (cfg.pinned or cfg.min_instances):
            await self._wait_ready()
        else:
            self._kick()

    # -- invocation --------------------------------------------------------------------------
    async def invoke(self, inv: Invocation, want_log_tail: bool = False) -> InvocationResult:
        """Queue ``inv`` and wait for its result (Event: return once queued — and, for a
        durable one (:attr:`Invocation.durable`) with a journal, once stored).

        Raises: QueueFull, PayloadTooLarge, FunctionNotRunnable, EventNotStored (a durable
        Event on a full disk: not accepted).
        """
        self._admit(inv)
        version = self.spec.function_version
        if inv.invocation_type is InvocationType.DRY_RUN:
            return InvocationResult(inv.request_id, b"", executed_version=version)
        if inv.invocation_type is InvocationType.EVENT:
            if self.events is not None and inv.durable:
                await self._store_event(inv)
                return InvocationResult(inv.request_id, b"", executed_version=version)
            item = _Item(inv, None, False)
            try:
                self._pool.enqueue(item)
            except errors.QueueFull:
                self.stats.throttled(inv.request_id)
                self._event_dropped(inv)
                raise
            self._kick()
            return InvocationResult(inv.request_id, b"", executed_version=version)
        item = self._queue_request(inv, want_log_tail)
        assert item.future is not None
        try:
            return await item.future
        except asyncio.CancelledError:
            self._pool.cancel(item)
            raise

    def submit(self, inv: Invocation,
               want_log_tail: bool = False) -> asyncio.Future[InvocationResult]:
        """A RequestResponse invocation without a task: queued (and dispatched, if a worker
        is idle) now; the future gets its result. Raises what :meth:`invoke` raises.

        For callers that answer from a callback (the management API's ``invoke``, every warm
        invocation's hot path). Cancelling the future does not withdraw the invocation: it
        runs, and its result is dropped (only a closing server cancels).
        """
        if inv.invocation_type is not InvocationType.REQUEST_RESPONSE:
            raise ValueError(f"submit takes RequestResponse invocations, not "
                             f"{inv.invocation_type.value}: use invoke")
        self._admit(inv)
        future = self._queue_request(inv, want_log_tail).future
        assert future is not None
        return future

    def _admit(self, inv: Invocation) -> None:
        limit = (EVENT_PAYLOAD_LIMIT if inv.invocation_type is InvocationType.EVENT
                 else SYNC_PAYLOAD_LIMIT)
        if len(inv.payload) > limit:
            raise errors.PayloadTooLarge(len(inv.payload), limit)
        if self.state is FunctionState.STOPPED or self.state is FunctionState.NEW:
            raise errors.FunctionNotRunnable(f"function {self.name} is not running "
                                             f"({self.state})")

    def _queue_request(self, inv: Invocation, want_log_tail: bool) -> _Item:
        item = _Item(inv, asyncio.get_running_loop().create_future(), want_log_tail)
        try:
            self._pool.enqueue(item)
        except errors.QueueFull:
            self.stats.throttled(inv.request_id)
            raise
        self._kick()
        return item

    def _event_dropped(self, inv: Invocation) -> None:
        self.event_drops += 1
        self._say("sprig", f"queue full (maxQueueSize {self._pool.max_queue_size}): "
                           f"dropped event {inv.request_id} from {inv.source}; "
                           f"{self.event_drops} dropped so far")

    async def _store_event(self, inv: Invocation) -> None:
        """Store a durable Event, then queue it (it runs even if we crash after the 202).

        Room in the queue is taken before the store (``maxQueueSize`` counts the events being
        stored), so throttling answers 429 at once, exactly as for an in-memory queue.
        """
        assert self.events is not None
        if len(self._pool.queue) + self._storing >= self._pool.max_queue_size:
            self._pool.dropped += 1
            self._event_dropped(inv)
            raise errors.QueueFull(self.name, self._pool.max_queue_size)
        self._storing += 1
        # Shielded: a caller that goes away once the commit is under way must not leave a
        # stored event that only the next start would queue.
        await asyncio.shield(self._store_then_queue(self.events, inv))

    async def _store_then_queue(self, events: EventJournal, inv: Invocation) -> None:
        try:
            await events.record(self.name, inv)
        except DiskFull as e:
            raise errors.EventNotStored(e, self.name) from e
        finally:
            self._storing -= 1
        # Stopped meanwhile: it is stored, the next start queues it. Restarted meanwhile: that
        # start may have queued it already (its request id tells).
        if self.state is FunctionState.RUNNING and inv.request_id not in self._durable_ids:
            self._durable_ids.add(inv.request_id)
            self._pool.queue.append(_Item(inv, None, False, durable=True))
            self._kick()

    # -- executing the pool's decisions ------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _kick(self) -> None:
        if self.state is FunctionState.STOPPED:
            return
        loop = asyncio.get_running_loop()
        for action in self._pool._assign(loop.time()):
            if isinstance(action, Dispatch):
                self._dispatch(action.worker_id, action.item)
            elif isinstance(action, StartWorker):
                self._spawn(self._start_worker(action.worker_id))
            elif isinstance(action, StopWorker):
                self._spawn(self._stop_worker(action.worker_id, action.reason))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._pool.next_deadline()
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._kick)

    def _on_output(self, worker_id: str, stream: str, line: str) -> None:
        self._say(stream, line)
        item = self._busy.get(worker_id)
        if item is not None:
            item.add_line(line)

    async def _start_worker(self, wid: str) -> None:
        gen = self._gen
        try:
            worker = await Worker.start(self.spec, self.runtime, wid, on_output=self._on_output,
                                        log=lambda m: self._say("sprig", m),
                                        socket_dir=self._socket_dir())
        except (LaunchError, OSError) as e:
            self._pool.worker_gone(wid)
            full = _disk_full_cause(e)
            if full is not None:
                where = disk_full_error(full, self.spec.work_dir)
                self._start_failed(errors.RUNTIME_DISK_FULL, f"cannot start the worker: {where}")
                return
            self._start_failed(errors.RUNTIME_INIT_ERROR, f"cannot start the worker: {e}")
            return
        self._workers[wid] = worker
        self._generation[wid] = gen
        try:
            t0 = time.perf_counter()
            await worker.wait_ready(self.init_timeout_s)
            worker.init_ms = (time.perf_counter() - t0) * 1000
        except (WorkerExited, TimeoutError) as e:
            await self._retire(wid)
            if isinstance(e, TimeoutError):
                etype, msg = errors.RUNTIME_INIT_ERROR, (
                    f"the runtime did not finish init within {self.init_timeout_s:g} s")
            elif worker.session.init_error is not None:
                etype = worker.session.init_error.error_type
                msg = worker.session.init_error.error_message
            else:
                etype, msg = errors.RUNTIME_EXIT_ERROR, f"Runtime exited during init: {e}"
            self._start_failed(etype, msg)
            return
        if self.state is FunctionState.STOPPED or gen != self._gen:
            await self._retire(wid)          # stopped, or started with an older configuration
            self._kick()
            return
        if not self.spec.config.pinned and not self._pool.queue and worker.init_ms is not None:
            # Pre-started (minInstancesCount): no invocation waited for this init, so no
            # REPORT carries it (as with Lambda's provisioned concurrency); the log keeps it.
            self._say("sprig", f"worker {wid} pre-started (Init Duration: "
                               f"{worker.init_ms:.2f} ms)")
            worker.init_ms = None
        self._pool.worker_ready(wid, asyncio.get_running_loop().time())
        self._pool.prestart_paused = False
        self._spawn(self._watch(wid, worker))
        if (self._ready_waiter is not None and not self._ready_waiter.done()
                and self._ready_count() >= self._wanted_ready()):
            self._ready_waiter.set_result(None)
        self._kick()

    def _start_failed(self, error_type: str, message: str) -> None:
        self._say("sprig", f"worker init failed: {error_type}: {message}")
        if self.spec.config.pinned:
            if self._ready_waiter is not None and not self._ready_waiter.done():
                self._pool.paused = True
                self._ready_waiter.set_exception(
                    errors.FunctionInitError(self.name, error_type, message))
                return
            self._fatal(f"{error_type}: {message}")
            for item in self._pool.take_all():
                self._deliver(item, self._unhandled(item, error_type, message))
            return
        if self.spec.config.min_instances:
            # No pre-starting again until a worker starts (for an invocation): a function
            # whose init fails must not be restarted in a loop.
            self._pool.prestart_paused = True
            if self._ready_waiter is not None and not self._ready_waiter.done():
                self._ready_waiter.set_exception(
                    errors.FunctionInitError(self.name, error_type, message))
        if self._pool.queue:
            item = self._pool.queue.popleft()
            self._deliver(item, self._unhandled(item, error_type, message))
        self._kick()

    def _fatal(self, reason: str) -> None:
        if self.on_fatal is None:
            return                     # no kernel: the pool simply starts a new pinned worker
        self.state = FunctionState.FAILED
        self._pool.paused = True
        self.on_fatal(reason)

    async def _watch(self, wid: str, worker: Worker) -> None:
        status = await asyncio.shield(worker.exited)
        slot = self._pool.workers.get(wid)
        if (worker.stopping or wid in self._busy or self._workers.get(wid) is not worker
                or (slot is not None and slot.state is WorkerState.BUSY)):
            return                      # _dispatch reports it (the invocation failed)
        self._say("sprig", f"worker {wid} {status.describe()}")
        await self._retire(wid)
        if self.spec.config.pinned:
            self._fatal(f"the pinned worker {status.describe()}")
        self._kick()

    async def _retire(self, wid: str, grace_s: float = 2.0) -> None:
        worker = self._workers.pop(wid, None)
        self._generation.pop(wid, None)
        if worker is not None:
            # Shielded: a cancelled caller (stop() cancels tasks) must not leave it running.
            await asyncio.shield(worker.stop(grace_s))
        self._pool.worker_gone(wid)

    async def _stop_worker(self, wid: str, reason: str) -> None:
        self._say("sprig", f"stopping worker {wid}: {reason}")
        await self._retire(wid)
        self._say("sprig", f"worker {wid} stopped")
        self._kick()

    def _unhandled(self, item: _Item, error_type: str, message: str) -> InvocationResult:
        return InvocationResult(item.invocation.request_id, error_document(error_type, message),
                                FunctionErrorKind.UNHANDLED, self.spec.function_version,
                                item.tail_bytes())

    def _dispatch(self, wid: str, item: _Item) -> None:
        """Hand ``item`` to the worker now (synchronously: the hot path has no task and no
        extra loop iteration); :meth:`_finished` runs when the worker answered or failed."""
        worker = self._workers.get(wid)
        if worker is None:              # it died between the pool's decision and now
            self._pool.worker_gone(wid)
            self._pool.queue.appendleft(item)
            asyncio.get_running_loop().call_soon(self._kick)
            return
        inv = item.invocation
        cfg = self.spec.config
        self._busy[wid] = item
        self._line(item, f"START RequestId: {inv.request_id} "
                         f"Version: {self.spec.function_version}")
        job = Job(inv.request_id, inv.payload, int(time.time() * 1000 + cfg.timeout_s * 1000),
                  self.spec.function_arn, cfg.encoding is PayloadEncoding.BINARY,
                  None if inv.client_context is None else json.dumps(inv.client_context))
        t0 = time.perf_counter()
        try:
            worker.dispatch(job, cfg.timeout_s,
                            lambda r: self._finished(wid, worker, item, t0, r))
        except Exception as e:
            # Never leave the worker marked busy with nothing running: the invocation fails
            # (Unhandled) and the worker is replaced.
            self._finished(wid, worker, item, t0, e)

    def _finished(self, wid: str, worker: Worker, item: _Item, t0: float,
                  r: Outcome | BaseException) -> None:
        ms = (time.perf_counter() - t0) * 1000
        if self._busy.get(wid) is item and not item.want_tail:
            del self._busy[wid]          # (a tail still takes the lines read after the answer)
        if self.state is FunctionState.STOPPED:
            return                       # stop() answered the caller already
        if not isinstance(r, Outcome | WorkerTimeout | WorkerExited):
            self._say("sprig", f"internal error running {item.invocation.request_id} on {wid}: "
                              f"{r!r}")
        result, retire, fatal = results.invocation_result(
            item.invocation.request_id, self.spec.function_version, r,
            self.spec.config.timeout_s, self.spec.config.memory_kb)
        stale = self._generation.get(wid) != self._gen
        if item.want_tail or retire or stale:
            self._spawn(self._finish_slow(wid, worker, item, ms, result, retire, fatal))
            return
        self._report(worker, item, ms, result)
        self._deliver(item, result)
        self._pool.worker_done(wid, asyncio.get_running_loop().time())
        self._kick()

    async def _finish_slow(self, wid: str, worker: Worker, item: _Item, ms: float,
                           result: InvocationResult, retire: bool, fatal: bool) -> None:
        """The rarer endings: a log tail to collect, a worker to kill or to replace."""
        if item.want_tail:
            # A runtime writes its output before its answer (Python runs unbuffered): those
            # lines are in the pipes or read already; wait until they reached the tail.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.output_taken(), TAIL_OUTPUT_WAIT_S)
            if self._busy.get(wid) is item:
                del self._busy[wid]
        self._report(worker, item, ms, result)
        if item.want_tail:
            result = InvocationResult(result.request_id, result.payload, result.function_error,
                                      result.executed_version, item.tail_bytes())
        if retire:                      # kill it before answering: the next call gets a new one
            await self._retire(wid, grace_s=0.0)
        self._deliver(item, result)
        if fatal and self.spec.config.pinned:
            # Only after answering the caller: the component's restart stops this function,
            # which cancels this very task.
            self._fatal(json.loads(result.payload).get("errorMessage", "worker failed"))
        if retire:
            pass
        elif self._generation.get(wid) != self._gen:
            await self._retire(wid)
        else:
            self._pool.worker_done(wid, asyncio.get_running_loop().time())
        self._kick()

    def _report(self, worker: Worker, item: _Item, ms: float, result: InvocationResult) -> None:
        """END and REPORT lines (AWS's format), and a log line for a failed event."""
        rid = item.invocation.request_id
        init, worker.init_ms = worker.init_ms, None     # only a worker's first: a cold start
        end = f"END RequestId: {rid}"
        report = results.report_line(rid, ms, self.spec.config.memory_kb,
                                     worker.memory_peak_kb(), init)
        self._say("sprig", f"{end}\n{report}")           # one write for both lines (hot path)
        self.stats.record(rid, ms, None if result.function_error is None
                          else str(result.function_error))
        item.add_line(end)
        item.add_line(report)
        if result.function_error is not None and item.future is None:
            self._say("sprig", f"event {rid} failed: {result.payload.decode(errors='replace')}")

    def _line(self, item: _Item, line: str) -> None:
        self._say("sprig", line)
        item.add_line(line)

    def _deliver(self, item: _Item, result: InvocationResult) -> None:
        """The invocation finished (answered, failed or timed out): tell its caller; a stored
        event is deleted from the journal."""
        if item.future is not None and not item.future.done():
            item.future.set_result(result)
        if item.durable and self.events is not None:
            self._durable_ids.discard(item.invocation.request_id)
            self.events.finished(item.invocation.request_id)

    def _fail(self, item: _Item, exc: Exception) -> None:
        """The invocation did not finish (the function stops): its caller gets ``exc``; a
        stored event stays stored and runs at the next start."""
        if item.future is not None and not item.future.done():
            item.future.set_exception(exc)
        elif item.durable:
            self._say("sprig", f"event {item.invocation.request_id} kept for the next start: "
                               f"{exc}")
        elif item.future is None:
            self._say("sprig", f"event {item.invocation.request_id} dropped: {exc}")

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
