"""The worker pool policy of one function: a pure, I/O-free state machine (httpcore style).

The :class:`Pool` knows the queued invocations and the workers (starting, idle, busy,
stopping) and, asked with :meth:`Pool._assign` at time ``now``, says what to do next:
start a worker, hand the head of the queue to an idle worker, or stop a worker idle for longer
than ``maxIdleTimeInSeconds``. The caller performs the actions and reports back
(:meth:`worker_ready`, :meth:`worker_done`, :meth:`worker_gone`). Because nothing here touches
processes or clocks, every rule is unit-tested directly:

* FIFO queue bounded by ``maxQueueSize`` (:class:`~sprig.functions.errors.QueueFull`);
* pinned: exactly one long-lived worker, invocations run one at a time, never reaped;
* on-demand: no worker until there is work; at most ``maxInstancesCount``; a warm idle worker
  is reused (the most recently used one, so the others can age out) before a new one starts;
  workers still starting count as capacity on the way, so a burst does not over-start;
* ``minInstancesCount`` (on-demand only): that many workers are started without work and
  idle reaping never goes below it (the least recently used go first), so the first
  invocation after a deployment or a quiet spell finds a warm worker. After a pre-start
  failed, pre-starting waits (:attr:`Pool.prestart_paused`) until a worker starts again:
  a broken function must not restart forever.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sprig.functions.errors import QueueFull

T = TypeVar("T")


class WorkerState(enum.StrEnum):
    STARTING = "STARTING"
    IDLE = "IDLE"
    BUSY = "BUSY"
    STOPPING = "STOPPING"


@dataclass
class WorkerSlot:
    id: str
    state: WorkerState = WorkerState.STARTING
    idle_since: float = 0.0
    invocations: int = 0


@dataclass(frozen=True)
class StartWorker:
    worker_id: str


@dataclass(frozen=True)
class Dispatch(Generic[T]):
    worker_id: str
    item: T


@dataclass(frozen=True)
class StopWorker:
    worker_id: str
    reason: str


Action = StartWorker | Dispatch[T] | StopWorker


@dataclass
class Pool(Generic[T]):
    """Queue + workers of one function; see the module docstring for the rules."""

    name: str
    pinned: bool = True
    max_instances: int = 100
    max_queue_size: int = 1000
    max_idle_s: float = 60.0
    paused: bool = False            # no new workers (pinned function waiting for the kernel)
    min_instances: int = 0          # minInstancesCount: workers kept started (on-demand)
    prestart_paused: bool = False   # a pre-start failed: start workers for work only
    queue: deque[T] = field(default_factory=deque)
    workers: dict[str, WorkerSlot] = field(default_factory=dict)
    dropped: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def limit(self) -> int:
        return 1 if self.pinned else self.max_instances

    # -- inputs ----------------------------------------------------------------------------
    def enqueue(self, item: T) -> None:
        """Queue ``item`` (FIFO) or raise QueueFull (counted in ``dropped``)."""
        if len(self.queue) >= self.max_queue_size:
            self.dropped += 1
            raise QueueFull(self.name, self.max_queue_size)
        self.queue.append(item)

    def cancel(self, item: T) -> bool:
        """Take a queued item back (its caller gave up); False if it was already dispatched."""
        try:
            self.queue.remove(item)
        except ValueError:
            return False
        return True

    def worker_ready(self, worker_id: str, now: float) -> None:
        """The worker finished init (its first /next)."""
        slot = self.workers.get(worker_id)
        if slot is not None and slot.state is WorkerState.STARTING:
            slot.state = WorkerState.IDLE
            slot.idle_since = now

    def worker_done(self, worker_id: str, now: float) -> None:
        """The worker answered its invocation and is warm again."""
        slot = self.workers.get(worker_id)
        if slot is not None and slot.state is WorkerState.BUSY:
            slot.state = WorkerState.IDLE
            slot.idle_since = now

    def worker_gone(self, worker_id: str) -> None:
        """The worker's process is gone (stopped, crashed, killed, failed to start)."""
        self.workers.pop(worker_id, None)

    def take_all(self) -> list[T]:
        """Empty the queue (the function stops): the caller fails these items."""
        items = list(self.queue)
        self.queue.clear()
        return items

    # -- the policy ------------------------------------------------------------------------
    def _assign(self, now: float) -> list[Action[T]]:
        """What to do now: dispatches first, then starts, then idle stops."""
        actions: list[Action[T]] = []
        idle = sorted((w for w in self.workers.values() if w.state is WorkerState.IDLE),
                      key=lambda w: w.idle_since, reverse=True)
        for slot in idle:
            if not self.queue:
                break
            slot.state = WorkerState.BUSY
            slot.invocations += 1
            actions.append(Dispatch(slot.id, self.queue.popleft()))
        if not self.paused:
            active = [w for w in self.workers.values() if w.state is not WorkerState.STOPPING]
            starting = sum(1 for w in active if w.state is WorkerState.STARTING)
            want = len(self.queue) - starting
            if self.pinned and not active:
                want = max(want, 1)
            elif not self.pinned and not self.prestart_paused:
                want = max(want, self.min_instances - len(active))
            for _ in range(max(0, min(want, self.limit - len(active)))):
                wid = f"{self.name}-{next(self._ids)}"
                self.workers[wid] = WorkerSlot(wid)
                actions.append(StartWorker(wid))
        if not self.pinned:
            alive = self._alive()
            # The least recently used first: the warm ones kept for minInstancesCount are
            # the ones most recently used.
            for slot in sorted(self.workers.values(), key=lambda w: w.idle_since):
                if alive <= self.min_instances:
                    break
                if slot.state is WorkerState.IDLE and now - slot.idle_since >= self.max_idle_s:
                    slot.state = WorkerState.STOPPING
                    alive -= 1
                    actions.append(StopWorker(slot.id, f"idle for more than {self.max_idle_s:g} s"))
        return actions

    def _alive(self) -> int:
        return sum(1 for w in self.workers.values() if w.state is not WorkerState.STOPPING)

    def next_deadline(self) -> float | None:
        """When an idle worker will be due for reaping (call :meth:`_assign` then); None
        when none will be (pinned, or no more workers than ``min_instances``)."""
        if self.pinned or self._alive() <= self.min_instances:
            return None
        times = [w.idle_since + self.max_idle_s for w in self.workers.values()
                 if w.state is WorkerState.IDLE]
        return min(times) if times else None

    def count(self, state: WorkerState) -> int:
        return sum(1 for w in self.workers.values() if w.state is state)

    def __repr__(self) -> str:
        kind = "pinned" if self.pinned else (
            f"on-demand min {self.min_instances} max {self.max_instances}")
        states = ", ".join(f"{s.value.lower()} {self.count(s)}" for s in WorkerState)
        return (f"<Pool {self.name} {kind}: queued {len(self.queue)}/{self.max_queue_size}, "
                f"{states}{', paused' if self.paused else ''}, dropped {self.dropped}>")
