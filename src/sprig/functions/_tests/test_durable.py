"""Durable Event invocations with real workers and a real state.db: stored before the answer,
run after a restart with the same request id, deleted once finished, throttled as before; and
a log sink that fails (a full disk) never wedges an invocation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sprig.disk import DiskFull
from sprig.functions import errors
from sprig.functions.config import LambdaConfig
from sprig.functions.durable import EventJournal
from sprig.functions.function import Function
from sprig.functions.invocation import Invocation, InvocationType
from sprig.functions.manager import FunctionManager
from sprig.functions.worker import FunctionSpec
from sprig.lambda_params import ContainerMode
from sprig.state.db import EventStore, StateDB
from sprig.testing.tmpfs import fill, small_tmpfs

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"

# Appends "<request id>\n" to SEEN, then holds the worker until RELEASE exists (if asked).
APP = '''
import os, time
def handler(event, context):
    with open(os.environ["SEEN"], "a") as f:
        f.write(context.aws_request_id + "\\n")
    if event.get("hold"):
        while not os.path.exists(os.environ["RELEASE"]):
            time.sleep(0.01)
    return {"ok": True}
'''


def make_spec(tmp: Path, **cfg: object) -> FunctionSpec:
    code = tmp / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(APP)
    (tmp / "work").mkdir(exist_ok=True)
    env = {"SEEN": str(tmp / "seen"), "RELEASE": str(tmp / "release")}
    config = dataclasses.replace(LambdaConfig(container_mode=ContainerMode.NO_CONTAINER),
                                 environment=env, **cfg)
    return FunctionSpec(
        component_name="comp", component_version="1.0.0", function_name="fn",
        function_version="1", function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn:1",
        runtime=PY, handler="app.handler", code_dir=code, config=config,
        work_dir=tmp / "work", core_env={"AWS_REGION": "eu-west-1"})


class Lines:
    """A log sink one can wait on."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._new = asyncio.Event()

    def __call__(self, stream: str, line: str) -> None:
        self.lines.extend(line.split("\n"))
        self._new.set()

    async def wait_for(self, pred: Callable[[str], bool], timeout: float = 30) -> str:
        async def scan() -> str:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if pred(line):
                        return line
                seen = len(self.lines)
                self._new.clear()
                await self._new.wait()
        return await asyncio.wait_for(scan(), timeout)


def event(payload: object, source: str = "api") -> Invocation:
    return Invocation(json.dumps(payload).encode(), InvocationType.EVENT, source=source)


@pytest.fixture
async def made() -> AsyncIterator[list[Function | EventJournal]]:
    things: list[Function | EventJournal] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, Function):
            await thing.stop()
        else:
            await thing.aclose()


def journal_on(db: Path, made: list[Function | EventJournal]) -> EventJournal:
    StateDB(db).close()
    journal = EventJournal(lambda: EventStore(db))
    made.append(journal)
    return journal


async def started(spec: FunctionSpec, journal: EventJournal, made: list[Function | EventJournal],
                  log: Lines | None = None) -> Function:
    fn = Function(spec, log=log or Lines())
    FunctionManager(journal).add(fn)
    made.append(fn)
    await asyncio.wait_for(fn.start(), 30)
    return fn


def stored(db: Path) -> list[str]:
    store = EventStore(db)
    try:
        return [e.request_id for e in store.pending()]
    finally:
        store.close()


async def test_an_event_is_stored_before_the_answer_runs_and_is_deleted(
        tmp_path: Path, made: list[Function | EventJournal]) -> None:
    db = tmp_path / "state.db"
    journal = journal_on(db, made)
    log = Lines()
    fn = await started(make_spec(tmp_path, pinned=True), journal, made, log)
    (tmp_path / "release").touch()
    inv = event({"n": 1})
    result = await fn.invoke(inv)
    assert result.request_id == inv.request_id
    # Answered: committed. (It may have run already; it is deleted only after it finished.)
    await log.wait_for(lambda line: line.startswith(f"END RequestId: {inv.request_id}"))
    await journal.drain()
    assert stored(db) == []
    assert (tmp_path / "seen").read_text().split() == [inv.request_id]
    assert journal.commits >= 2                       # the insert, then the delete


async def test_unfinished_events_run_after_a_restart_with_their_request_ids(
        tmp_path: Path, made: list[Function | EventJournal]) -> None:
    db = tmp_path / "state.db"
    journal = journal_on(db, made)
    log = Lines()
    fn = await started(make_spec(tmp_path, pinned=True), journal, made, log)
    running = event({"hold": True})
    await fn.invoke(running)
    await log.wait_for(lambda line: line.startswith(f"START RequestId: {running.request_id}"))
    queued = [event({"n": i}) for i in range(3)]
    for inv in queued:
        await fn.invoke(inv)
    ids = [running.request_id, *(i.request_id for i in queued)]
    assert stored(db) == ids
    await fn.stop()          # the running one is killed; all four stay stored, in order
    await journal.aclose()
    assert stored(db) == ids
    (tmp_path / "release").touch()
    log2 = Lines()
    again = await started(make_spec(tmp_path, pinned=True),
                          journal_on(db, made), made, log2)
    assert again.details()["storedEvents"] >= 1
    await log2.wait_for(lambda line: line.startswith(f"END RequestId: {ids[-1]}"))
    seen = (tmp_path / "seen").read_text().split()
    assert seen[0] == running.request_id                    # the first run, killed
    assert seen[1:] == ids                                  # then all, oldest first
    assert any("4 stored Event invocation(s) queued again" in line for line in log2.lines)


async def test_max_queue_size_counts_events_being_stored(
        tmp_path: Path, made: list[Function | EventJournal]) -> None:
    db = tmp_path / "state.db"
    journal = journal_on(db, made)
    log = Lines()
    fn = await started(make_spec(tmp_path, pinned=True, max_queue_size=2), journal, made, log)
    busy = event({"hold": True})
    await fn.invoke(busy)
    await log.wait_for(lambda line: line.startswith(f"START RequestId: {busy.request_id}"))
    answers = await asyncio.gather(*(fn.invoke(event({"n": i})) for i in range(5)),
                                   return_exceptions=True)
    full = [a for a in answers if isinstance(a, errors.QueueFull)]
    assert len(full) == 3 and len(answers) - len(full) == 2, answers
    assert "maxQueueSize 2" in str(full[0])
    assert fn.event_drops == 3 and fn.pool.dropped == 3
    assert len(stored(db)) == 3                             # the running one and two queued
    (tmp_path / "release").touch()


async def test_event_source_deliveries_are_not_stored(
        tmp_path: Path, made: list[Function | EventJournal]) -> None:
    db = tmp_path / "state.db"
    journal = journal_on(db, made)
    log = Lines()
    fn = await started(make_spec(tmp_path, pinned=True), journal, made, log)
    busy = event({"hold": True}, source="pubsub")
    await fn.invoke(busy)
    await log.wait_for(lambda line: line.startswith(f"START RequestId: {busy.request_id}"))
    await fn.invoke(event({}, source="iotcore"))
    assert stored(db) == [] and journal.commits == 0
    (tmp_path / "release").touch()


async def test_an_event_on_a_full_disk_is_refused_naming_the_path_then_accepted_again(
        made: list[Function | EventJournal]) -> None:
    with small_tmpfs("4m") as disk:
        db = disk / "state.db"
        journal = journal_on(db, made)
        work = disk / "fn"
        work.mkdir()
        fn = await started(make_spec(work, pinned=False), journal, made)
        filler = fill(disk)
        big = {"data": "x" * (200 * 1024)}
        with pytest.raises(errors.EventNotStored) as e:
            await fn.invoke(event(big))
        assert isinstance(e.value, DiskFull) and isinstance(e.value, errors.FunctionError)
        assert str(e.value).startswith(f"no space left on {db}: the Event invocation of comp "
                                       "was not accepted")
        assert not fn.pool.queue and fn.details()["storedEvents"] == 0
        filler.unlink()
        await fn.invoke(event(big))
        assert len(stored(db)) <= 1
        await fn.stop()
        await journal.aclose()


async def test_a_failing_log_sink_never_wedges_an_invocation(
        tmp_path: Path, made: list[Function | EventJournal]) -> None:
    """The bug found on main: the START line raised ENOSPC after the worker was marked busy,
    and every later invocation of the function hung."""
    def full_disk(stream: str, line: str) -> None:
        raise OSError(28, "No space left on device")

    (tmp_path / "release").touch()
    fn = Function(make_spec(tmp_path, pinned=False), log=full_disk)
    made.append(fn)
    await fn.start()
    for _ in range(3):
        result = await asyncio.wait_for(fn.invoke(Invocation(b"{}")), 30)
        assert result.ok and json.loads(result.payload) == {"ok": True}
    assert fn.log_failures >= 6           # START, and END+REPORT (one write) per invocation


async def test_a_worker_that_cannot_start_for_lack_of_space_fails_with_runtime_disk_full(
        tmp_path: Path, made: list[Function | EventJournal],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers' socket directory is created under the temporary directory: on a
    filesystem out of inodes that is ENOSPC, and the invocation says so (no hang)."""
    (tmp_path / "release").touch()
    with small_tmpfs("1m", inodes=2) as full:
        (full / "taken").touch()                     # the root and this: no inode left
        monkeypatch.setattr(tempfile, "tempdir", str(full))
        fn = Function(make_spec(tmp_path, pinned=False))
        made.append(fn)
        await fn.start()
        result = await asyncio.wait_for(fn.invoke(Invocation(b"{}")), 30)
        doc = json.loads(result.payload)
        assert result.function_error is not None and doc["errorType"] == "Runtime.DiskFull"
        assert doc["errorMessage"].startswith(f"cannot start the worker: no space left on "
                                              f"{full}/sprig-rapi-"), doc
        monkeypatch.setattr(tempfile, "tempdir", None)       # space again: it recovers
        again = await asyncio.wait_for(fn.invoke(Invocation(b"{}")), 30)
        assert again.ok and json.loads(again.payload) == {"ok": True}


class _SignallingJournal(EventJournal):
    """Tells when a record is under way (so the test can cancel its caller right then)."""

    recording: asyncio.Event

    async def record(self, function: str, inv: Invocation) -> None:
        self.recording.set()
        await super().record(function, inv)


async def test_a_caller_gone_during_the_store_does_not_strand_the_event(
        tmp_path: Path, made: list[Function | EventJournal]) -> None:
    db = tmp_path / "state.db"
    StateDB(db).close()
    journal = _SignallingJournal(lambda: EventStore(db))
    journal.recording = asyncio.Event()
    made.append(journal)
    log = Lines()
    fn = await started(make_spec(tmp_path, pinned=True), journal, made, log)
    (tmp_path / "release").touch()
    inv = event({"n": 1})
    caller = asyncio.ensure_future(fn.invoke(inv))
    await journal.recording.wait()
    caller.cancel()                              # e.g. the HTTP client disconnected
    # Stored, so it must run now, not only at the next start.
    await log.wait_for(lambda line: line.startswith(f"END RequestId: {inv.request_id}"))
    assert caller.cancelled()
