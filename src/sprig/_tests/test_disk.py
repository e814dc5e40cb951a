"""A full disk is a state: the error, its test, the watch of what is full, and the writers that
live on hot paths (component logs, the core log, state.db) on a real full tmpfs."""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprig.disk import WATCH, DiskFull, DiskWatch, disk_full_error, is_disk_full, status
from sprig.logs import ComponentLog, CoreLogHandler
from sprig.state.db import EventStore, PendingEvent, StateDB
from sprig.testing.tmpfs import fill, small_tmpfs


@pytest.fixture
def disk() -> Iterator[Path]:
    with small_tmpfs("2m") as base:
        WATCH.clear()
        yield base
        WATCH.clear()


def test_which_errors_mean_a_full_disk(tmp_path: Path) -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert is_disk_full(shutil.Error([("a", "b", "[Errno 28] No space left on device")]))
    assert not is_disk_full(shutil.Error([("a", "b", "[Errno 13] Permission denied")]))
    assert not is_disk_full(ValueError("No space left on device"))
    named = disk_full_error(OSError(errno.ENOSPC, "No space left on device", "/r/x.json"),
                            tmp_path, "writing x")
    assert str(named) == "no space left on /r/x.json: writing x"
    assert str(disk_full_error(OSError(errno.ENOSPC, "x"), tmp_path)) == \
        f"no space left on {tmp_path}"


def test_the_watch_lists_a_path_until_its_write_succeeds_or_space_returns(disk: Path) -> None:
    watch = DiskWatch()
    target = disk / "a.log"
    assert watch.failed(target, "a log") is True
    assert watch.failed(target, "a log") is False            # logged once, counted twice
    filler = fill(disk)
    [entry] = watch.snapshot()
    assert (entry.path, entry.what, entry.failures) == (str(target), "a log", 2)
    assert watch.recovered(target) is not None and watch.snapshot() == []
    watch.failed(target, "a log")
    filler.unlink()                                          # space is back: not listed
    assert watch.snapshot() == []


def test_a_component_log_drops_and_counts_lines_on_a_full_disk_then_says_so(
        disk: Path) -> None:
    log = ComponentLog(disk / "logs" / "Fn.log", component="Fn")
    log.write_line("stdout", "before")
    filler = fill(disk)
    pad = "x" * 5000                # past the page the file already has
    for i in range(5):
        log.write_line("stdout", f"lost {i} {pad}")          # never raises
    log.write_line("stdout", f"two\nlines {pad}")
    assert WATCH.is_full(log.path)
    assert str(log.path) in [e["path"] for e in status(disk)["full"]]
    filler.unlink()
    log.write_line("stdout", "after")
    lines = log.path.read_text().splitlines()
    assert lines[0].endswith("Fn: before")
    # The first lost line may be cut where the disk ran out; the notice starts a new line.
    rest = lines[2:] if "lost 0" in lines[1] else lines[1:]
    assert len(rest) == 2 and not any("lost" in line for line in rest), lines
    assert rest[0].endswith(f"[WARN] (sprig) Fn: 7 log line(s) dropped: no space left on "
                            f"{log.path}")
    assert rest[1].endswith("Fn: after")
    assert not WATCH.is_full(log.path)
    log.close()


def test_the_core_log_holds_records_back_on_a_full_disk(disk: Path) -> None:
    handler = CoreLogHandler(disk / "sprig.log")
    handler.setFormatter(logging.Formatter("[%(levelname)s] (%(name)s) %(message)s"))
    logger = logging.getLogger("sprig.test-disk")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("first")
        filler = fill(disk)
        for i in range(CoreLogHandler.KEEP + 5):
            logger.warning("held %d%s", i, " " + "x" * 5000 if i == 0 else "")
        assert WATCH.is_full(handler.path)
        filler.unlink()
        logger.warning("last")
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = (disk / "sprig.log").read_text().splitlines()
    assert lines[0] == "[WARNING] (sprig.test-disk) first"
    if lines[1].startswith("[WARNING] (sprig.test-disk) held 0"):
        del lines[1]                # cut where the disk ran out; the note starts a new line
    assert lines[1] == (f"[WARNING] (sprig.logs) no space left on {disk / 'sprig.log'}: "
                        f"{CoreLogHandler.KEEP + 5} line(s) were held back, the oldest 5 "
                        "are lost")
    assert lines[2] == "[WARNING] (sprig.test-disk) held 5"
    assert lines[-2] == f"[WARNING] (sprig.test-disk) held {CoreLogHandler.KEEP + 4}"
    assert lines[-1] == "[WARNING] (sprig.test-disk) last"
    assert not WATCH.is_full(handler.path)


def test_state_db_on_a_full_disk_raises_disk_full_changes_nothing_and_recovers(
        disk: Path) -> None:
    db = StateDB(disk / "state.db")
    db.set_meta("k", "before")
    filler = fill(disk)
    big = "x" * (1 << 20)                   # more than any slack in the WAL
    with pytest.raises(DiskFull) as e:
        db.set_meta("k", big)
    assert str(e.value).startswith(f"no space left on {disk / 'state.db'}")
    assert WATCH.is_full(disk / "state.db")
    assert db.get_meta("k") == "before"
    filler.unlink()
    db.set_meta("k", "after")               # no transaction left open by the failure
    assert db.get_meta("k") == "after"
    assert not WATCH.is_full(disk / "state.db")
    db.close()


def _event(rid: str, fn: str = "Fn", payload: bytes = b"{}") -> PendingEvent:
    return PendingEvent(rid, fn, payload, {"custom": {"k": 1}}, "api", 1.0)


def test_event_store_keeps_order_forgets_and_fails_clearly_when_full(disk: Path) -> None:
    StateDB(disk / "state.db").close()
    store = EventStore(disk / "state.db")
    store.apply([_event("a"), _event("b"), _event("c", "Other")], [])
    store.apply([_event("a"), _event("d")], ["b"])                 # a twice: stored once
    assert [e.request_id for e in store.pending("Fn")] == ["a", "d"]
    assert store.pending("Other")[0].client_context == {"custom": {"k": 1}}
    assert [e.request_id for e in store.pending()] == ["a", "c", "d"]
    filler = fill(disk)
    with pytest.raises(DiskFull):
        store.apply([_event("big", payload=b"x" * (1 << 20))], ["a"])
    assert [e.request_id for e in store.pending()] == ["a", "c", "d"]    # nothing changed
    filler.unlink()
    assert store.forget_except({"Fn"}) == 1
    assert [e.request_id for e in store.pending()] == ["a", "d"]
    store.close()
    reopened = EventStore(disk / "state.db")                        # they survive a restart
    assert [e.request_id for e in reopened.pending()] == ["a", "d"]
    reopened.close()
