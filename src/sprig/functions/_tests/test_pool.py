"""The pool policy, without processes: every rule at a chosen ``now``."""

from __future__ import annotations

import pytest

from sprig.functions.errors import QueueFull
from sprig.functions.pool import Dispatch, Pool, StartWorker, StopWorker, WorkerState


def starts(actions: list[object]) -> list[str]:
    return [a.worker_id for a in actions if isinstance(a, StartWorker)]


def test_pinned_starts_one_worker_and_runs_serially() -> None:
    p: Pool[str] = Pool("f", pinned=True)
    [w] = starts(p._assign(0))                 # started with the component, before any work
    assert p._assign(0) == []                  # never a second one
    p.enqueue("a")
    p.enqueue("b")
    assert p._assign(0) == []                  # still starting
    p.worker_ready(w, 1)
    assert p._assign(1) == [Dispatch(w, "a")]  # FIFO, one at a time
    assert p._assign(1) == []
    p.worker_done(w, 2)
    assert p._assign(500) == [Dispatch(w, "b")]
    p.worker_done(w, 3)
    assert p._assign(10_000) == []             # pinned workers are never reaped
    assert "pinned" in repr(p) and "idle 1" in repr(p)


def test_pinned_restarts_after_loss_unless_paused() -> None:
    p: Pool[str] = Pool("f", pinned=True)
    [w] = starts(p._assign(0))
    p.worker_gone(w)
    p.paused = True
    assert p._assign(0) == []
    p.paused = False
    assert len(starts(p._assign(0))) == 1


def test_on_demand_starts_lazily_up_to_max_and_reuses_warm() -> None:
    p: Pool[int] = Pool("f", pinned=False, max_instances=2, max_idle_s=60)
    assert p._assign(0) == []                  # no process until the first invocation
    for i in range(3):
        p.enqueue(i)
    ws = starts(p._assign(0))
    assert len(ws) == 2                        # capped at maxInstancesCount
    assert starts(p._assign(0)) == []          # starting workers count as capacity
    p.worker_ready(ws[0], 1)
    assert p._assign(1) == [Dispatch(ws[0], 0)]
    p.worker_ready(ws[1], 2)
    assert p._assign(2) == [Dispatch(ws[1], 1)]
    p.worker_done(ws[0], 3)
    assert p._assign(3) == [Dispatch(ws[0], 2)]
    p.worker_done(ws[0], 4)
    p.worker_done(ws[1], 5)
    p.enqueue(9)
    assert p._assign(6) == [Dispatch(ws[1], 9)]   # the most recently used warm worker
    assert p.count(WorkerState.BUSY) == 1


def test_on_demand_reaps_idle_workers() -> None:
    p: Pool[int] = Pool("f", pinned=False, max_idle_s=60)
    p.enqueue(1)
    [w] = starts(p._assign(0))
    p.worker_ready(w, 0)
    p._assign(0)
    p.worker_done(w, 10)
    assert p.next_deadline() == 70
    assert p._assign(69.9) == []
    [stop] = p._assign(70)
    assert isinstance(stop, StopWorker) and stop.worker_id == w and "idle" in stop.reason
    assert p.workers[w].state is WorkerState.STOPPING
    p.enqueue(2)
    assert len(starts(p._assign(71))) == 1     # a stopping worker takes no work
    p.worker_gone(w)
    assert w not in p.workers


def test_queue_full_counts_drops_and_cancel() -> None:
    p: Pool[str] = Pool("f", pinned=False, max_queue_size=2)
    p.enqueue("a")
    p.enqueue("b")
    with pytest.raises(QueueFull) as e:
        p.enqueue("c")
    assert "maxQueueSize 2" in str(e.value) and p.dropped == 1
    assert p.cancel("a") and not p.cancel("a")
    assert p.take_all() == ["b"] and not p.queue


def test_min_instances_start_without_work_and_survive_idle() -> None:
    p: Pool[int] = Pool("f", pinned=False, max_instances=3, max_idle_s=60, min_instances=1)
    [w1] = starts(p._assign(0))                # pre-started: nothing queued
    p.worker_ready(w1, 0)
    for i in (1, 2):
        p.enqueue(i)
    assert [type(a).__name__ for a in p._assign(5)] == ["Dispatch", "StartWorker"]
    [w2] = [w for w in p.workers if w != w1]
    p.worker_ready(w2, 6)
    p._assign(6)
    p.worker_done(w1, 10)                       # w1: least recently used
    p.worker_done(w2, 20)
    assert p.next_deadline() == 70
    [stop] = p._assign(80)
    assert isinstance(stop, StopWorker) and stop.worker_id == w1    # the older one goes
    assert p.next_deadline() is None           # the last one is kept: no deadline at all
    assert p._assign(10_000) == []
    p.worker_gone(w1)
    p.worker_gone(w2)                           # it crashed: a new one is pre-started
    assert len(starts(p._assign(10_001))) == 1
    p.prestart_paused = True                    # a pre-start failed: only work starts one
    p.workers.clear()
    assert p._assign(10_002) == []
