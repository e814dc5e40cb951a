"""``minInstancesCount`` with real workers: pre-started on start, kept through idle reaping,
and a function whose init fails is not restarted in a loop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sprig.functions import errors
from sprig.functions._tests.test_function import Logs, call, code, inv, made, make_spec
from sprig.functions.function import Function
from sprig.functions.pool import WorkerState

__all__ = ["code", "made"]     # fixtures


def _pids(fn: Function) -> set[int]:
    return {w.process.pid for w in fn._workers.values()}


def _cold_reports(logs: Logs) -> int:
    """REPORT lines with an Init Duration: invocations that waited for a worker's init."""
    return sum(line.startswith("REPORT") and "Init Duration" in line for _, line in logs.lines)


async def test_min_instances_are_started_before_any_invocation(
        code: Path, made: list[Function]) -> None:
    logs = Logs()
    fn = Function(make_spec(code, pinned=False, max_instances=3, min_instances=2), log=logs)
    made.append(fn)
    await fn.start()
    # start() returns once both are up: the deployment's first invocation finds them warm
    assert fn.pool.count(WorkerState.IDLE) == 2 and len(fn.pool.workers) == 2
    before = _pids(fn)
    r = await call(fn, {})
    assert r.ok and json.loads(r.payload)["pid"] in before
    assert _cold_reports(logs) == 0, "the first invocation paid an init (a cold start)"
    assert fn.details()["minInstancesCount"] == 2


async def test_idle_reaping_keeps_min_instances(code: Path, made: list[Function]) -> None:
    logs = Logs()
    fn = Function(make_spec(code, pinned=False, max_instances=3, min_instances=1,
                            max_idle_s=0.3), log=logs)
    made.append(fn)
    await fn.start()
    results = await asyncio.wait_for(asyncio.gather(
        *(fn.invoke(inv({"op": "sleep", "s": 0.3})) for _ in range(3))), 60)
    assert all(r.ok for r in results)
    # the burst scaled out to 3 workers (which of them served which call depends on how fast
    # the new ones started: on a loaded machine the pre-started one may serve two)
    assert len(fn.pool.workers) == 3
    burst = _pids(fn)
    def stopped() -> int:
        return sum(line.endswith(" stopped") for _, line in logs.lines)

    await logs.wait_for(lambda line: stopped() >= 2)
    # one is kept, and no reaping is scheduled for it any more
    assert len(fn.pool.workers) == 1 and fn.pool.next_deadline() is None
    kept = _pids(fn)
    assert kept <= burst
    n_init = _cold_reports(logs)
    r = await call(fn, {})
    assert json.loads(r.payload)["pid"] in kept                   # warm, after idle
    assert _cold_reports(logs) == n_init


async def test_a_failing_init_is_not_restarted_in_a_loop(
        code: Path, made: list[Function]) -> None:
    (code / "app.py").write_text("raise RuntimeError('init boom')\n")
    logs = Logs()
    fn = Function(make_spec(code, pinned=False, max_instances=2, min_instances=1), log=logs)
    made.append(fn)
    with pytest.raises(errors.FunctionInitError, match="init boom"):
        await fn.start()
    assert fn.pool.prestart_paused and not fn.pool.workers
    failures = sum("worker init failed" in line for _, line in logs.lines)
    assert failures == 1
    # an invocation still tries (and fails like an on-demand function's init); no loop after
    r = await call(fn, {})
    assert "init boom" in json.loads(r.payload)["errorMessage"]
    assert not fn.pool.workers
    assert sum("worker init failed" in line for _, line in logs.lines) == failures + 1
