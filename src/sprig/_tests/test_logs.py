from __future__ import annotations

import asyncio
import calendar
import logging
import re
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.logs import ComponentLog, CoreLogHandler, follow, rotated_files, tail_lines

LINE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
    r" \[(DEBUG|INFO|WARN|ERROR)\] \((\w+)\) ([\w.]+): (.*)$"
)


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.000_013  # distinct microsecond stamps for every rotation
        return self.now


def total_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.parent.iterdir())


def test_line_format_utc(tmp_path: Path) -> None:
    t = calendar.timegm((2026, 11, 27, 10, 0, 0)) + 0.1234
    path = tmp_path / "logs" / "com.example.Hello.log"
    with ComponentLog(path, clock=lambda: t) as log:
        log.write_line("stdout", "hello world")
        log.write_line("stderr", "oops\n", level="ERROR")
        log.write_line("stdout", "two\nlines\r\n")
    assert path.read_text().splitlines() == [
        "2026-11-27T10:00:00.123Z [INFO] (stdout) com.example.Hello: hello world",
        "2026-11-27T10:00:00.123Z [ERROR] (stderr) com.example.Hello: oops",
        "2026-11-27T10:00:00.123Z [INFO] (stdout) com.example.Hello: two",
        "2026-11-27T10:00:00.123Z [INFO] (stdout) com.example.Hello: lines",
    ]


def test_real_clock_line_matches_format(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    with ComponentLog(path, component="my.comp") as log:
        log.write_line("stdout", "é ünïcode")
    (line,) = path.read_text(encoding="utf-8").splitlines()
    m = LINE_RE.match(line)
    assert m and m.groups() == ("INFO", "stdout", "my.comp", "é ünïcode")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="max_total_bytes"):
        ComponentLog(tmp_path / "a.log", 1000, 999)
    with pytest.raises(ValidationError, match="max_file_bytes"):
        ComponentLog(tmp_path / "a.log", 0)
    log = ComponentLog(tmp_path / "a.log")
    with pytest.raises(ValidationError) as err:
        log.write_line("stdout", "x", level="TRACE")
    assert "DEBUG, INFO, WARN, ERROR" in str(err.value)
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.write_line("stdout", "x")


def test_rotation_bounds_total_and_keeps_newest(tmp_path: Path) -> None:
    path = tmp_path / "comp.log"
    log = ComponentLog(path, max_file_bytes=300, max_total_bytes=1000,
                       clock=FakeClock(1_800_000_000.0))
    for i in range(500):
        log.write_line("stdout", f"line {i:04d}")
        assert path.stat().st_size <= 300
        assert total_size(path) <= 1000
    log.close()
    rotated = rotated_files(path)
    assert len(rotated) >= 2
    for f in rotated:
        assert re.fullmatch(r"comp_\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}_\d{6}\.log", f.name)
    # everything left is the newest lines, contiguous, in order
    kept = [ln for f in [*rotated, path] for ln in f.read_text().splitlines()]
    numbers = [int(ln.rsplit(" ", 1)[1]) for ln in kept]
    assert numbers == list(range(numbers[0], 500))
    assert numbers[0] > 400


def test_same_stamp_rotations_do_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with ComponentLog(path, 100, 10_000, clock=lambda: 1_800_000_000.5) as log:
        for i in range(20):
            log.write_line("stdout", f"{i}" * 30)
    rotated = rotated_files(path)
    assert len(rotated) >= 5
    lines = [ln for f in [*rotated, path] for ln in f.read_text().splitlines()]
    assert [ln.rsplit(": ", 1)[1] for ln in lines] == [f"{i}" * 30 for i in range(20)]


def test_reopen_existing_file_continues_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with ComponentLog(path, 200, 1000) as log:
        log.write_line("stdout", "a" * 100)
    with ComponentLog(path, 200, 1000) as log:
        log.write_line("stdout", "b" * 100)
    assert len(rotated_files(path)) == 1
    assert tail_lines(path, 2)[0].endswith("a" * 100)


def test_oversized_line_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with ComponentLog(path, 100, 1000) as log:
        log.write_line("stdout", "small")
        log.write_line("stdout", "x" * 500)
        log.write_line("stdout", "after")
    assert tail_lines(path, 3)[1].endswith("x" * 500)
    assert tail_lines(path, 1)[0].endswith("after")


def test_manual_rotate(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with ComponentLog(path) as log:
        assert log.rotate() is None
        log.write_line("stdout", "one")
        rotated = log.rotate()
        assert rotated is not None and rotated.read_text().endswith("one\n")
        assert path.stat().st_size == 0


def test_concurrent_threads_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    log = ComponentLog(path, 2000, 10**7)

    def work(k: int) -> None:
        for i in range(200):
            log.write_line("stdout", f"t{k}-{i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = [ln for f in [*rotated_files(path), path] for ln in f.read_text().splitlines()]
    assert len(lines) == 800
    assert all(LINE_RE.match(ln) for ln in lines)
    for k in range(4):
        mine = [ln.rsplit(": ", 1)[1] for ln in lines if f": t{k}-" in ln]
        assert mine == [f"t{k}-{i}" for i in range(200)]


def test_tail_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    assert tail_lines(path, 5) == []
    with ComponentLog(path, 400, 10**6) as log:
        for i in range(100):
            log.write_line("stdout", f"n{i}")
    assert len(rotated_files(path)) > 5
    got = tail_lines(path, 30)
    assert [ln.rsplit(": ", 1)[1] for ln in got] == [f"n{i}" for i in range(70, 100)]
    assert len(tail_lines(path, 1000)) == 100
    assert tail_lines(path, 0) == []


def test_tail_lines_reads_blocks_backwards(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    # lines crossing the 64 KiB block boundaries; a partial last line counts as a line
    body = "".join(f"{i:06d}{'-' * 993}\n" for i in range(300)) + "partial"
    path.write_text(body)
    got = tail_lines(path, 150)
    assert got[-1] == "partial"
    assert [int(ln[:6]) for ln in got[:-1]] == list(range(151, 300))
    assert tail_lines(path, 1000)[0].startswith("000000")


async def _next(it: AsyncIterator[str]) -> str:
    return await asyncio.wait_for(anext(it), timeout=5)


async def test_follow_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    log = ComponentLog(path, 300, 100_000)
    log.write_line("stdout", "old line")
    it = follow(path, poll_interval=0.005)  # from the end as of this call
    log.write_line("stdout", "new 0")
    assert (await _next(it)).endswith("new 0")
    for i in range(1, 40):
        log.write_line("stdout", f"new {i}")
        if i % 7 == 0:
            # two lines then a rotation, all before the follower reads any of them
            log.write_line("stdout", f"extra {i}")
            log.rotate()
        assert (await _next(it)).endswith(f"new {i}")
        if i % 7 == 0:
            assert (await _next(it)).endswith(f"extra {i}")
    assert len(rotated_files(path)) >= 5
    await it.aclose()  # type: ignore[attr-defined]
    log.close()


async def test_follow_from_start_and_last(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with ComponentLog(path, 200, 100_000) as log:
        for i in range(10):
            log.write_line("stdout", f"n{i}")
        it = follow(path, from_end=False, poll_interval=0.005)
        current = path.read_text().splitlines()
        got = [await _next(it) for _ in current]
        assert got == current
        await it.aclose()  # type: ignore[attr-defined]

        it = follow(path, last=5, poll_interval=0.005)
        got = [(await _next(it)).rsplit(": ", 1)[1] for _ in range(5)]
        assert got == ["n5", "n6", "n7", "n8", "n9"]
        log.write_line("stdout", "n10")
        assert (await _next(it)).endswith("n10")
        await it.aclose()  # type: ignore[attr-defined]


async def test_follow_waits_for_the_file_then_reads_it_all(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    it = follow(path, poll_interval=0.005)
    with ComponentLog(path) as log:
        log.write_line("stdout", "first")
        log.write_line("stdout", "second")
        assert (await _next(it)).endswith("first")
        assert (await _next(it)).endswith("second")
    await it.aclose()  # type: ignore[attr-defined]


def test_rotation_names_stay_ordered_when_the_clock_steps_back(tmp_path: Path) -> None:
    times = iter([1_800_000_100.0, 1_800_000_050.0, 1_800_000_000.0, 1_700_000_000.0])
    path = tmp_path / "c.log"
    with ComponentLog(path, 60, 10_000, clock=lambda: next(times)) as log:
        for i in range(4):
            log.write_line("stdout", f"line {i} " + "x" * 20)
    lines = [ln for f in [*rotated_files(path), path] for ln in f.read_text().splitlines()]
    assert [ln.split(": ", 1)[1][:6] for ln in lines] == [f"line {i}" for i in range(4)]


# -- the core's own log ------------------------------------------------------------------------

def core_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"sprig.test.core.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


def test_core_log_is_owner_only_rotated_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "sprig.log"
    handler = CoreLogHandler(path, 2048, 8192, clock=FakeClock(1_800_000_000.0))
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600   # created at once
    log = core_logger(handler)
    for i in range(2000):
        log.warning("refused %d from %s", i, "peer")
        assert path.stat().st_size <= 2048
        assert total_size(path) <= 8192
    handler.close()
    rotated = rotated_files(path)
    assert len(rotated) >= 3
    for f in [*rotated, path]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert re.fullmatch(r"sprig(_\d{4}(_\d{2}){5}_\d{6})?\.log", f.name)
    kept = [ln for f in [*rotated, path] for ln in f.read_text().splitlines()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[WARNING\] "
                        r"\(sprig\.test\.core\.\d+\) refused 1999 from peer", kept[-1])
    numbers = [int(ln.split("refused ")[1].split()[0]) for ln in kept]
    assert numbers == list(range(numbers[0], 2000))


def test_core_log_narrows_an_older_file_and_rotates_an_oversized_one(tmp_path: Path) -> None:
    """A sprig.log left by a version that did not rotate: 0644 and far over the limit."""
    path = tmp_path / "sprig.log"
    path.write_bytes(b"old line\n" * 2000)        # 18 000 bytes
    path.chmod(0o644)
    handler = CoreLogHandler(path, 1024, 4096)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == 0                 # rotated at once...
    assert rotated_files(path) == []               # ...and pruned: it alone exceeds the total
    handler.close()


def test_core_log_cuts_a_record_longer_than_a_file(tmp_path: Path) -> None:
    path = tmp_path / "sprig.log"
    handler = CoreLogHandler(path, 1024, 4096)
    log = core_logger(handler)
    log.error("huge: %s", "é" * 5000)
    handler.close()
    data = path.read_bytes()
    assert len(data) <= 1024
    assert data.endswith(b"[cut: the record was longer than the log file size]\n")
    data.decode("utf-8")                            # not cut inside a character


def test_core_log_write_error_goes_to_handle_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = CoreLogHandler(tmp_path / "sprig.log")
    failed: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", failed.append)
    handler.file.close()
    core_logger(handler).info("after close")
    assert [r.getMessage() for r in failed] == ["after close"]
