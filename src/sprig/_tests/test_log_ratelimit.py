"""RateLimitHandler on a fake clock (no sleeping), and asyncio's refused accepts as one line."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Iterator

import pytest

from sprig.log_ratelimit import (
    ACCEPT_FAILED,
    RateLimitHandler,
    loop_exception_handler,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sink(logging.Handler):
    """A target that keeps what reaches it, formatted as a file would get it."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.closed = False
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def limiter(clock: Clock, sink: Sink) -> Iterator[RateLimitHandler]:
    handler = RateLimitHandler([sink], interval_s=60, burst=3, clock=clock)
    yield handler
    handler.close()


def logger_for(handler: logging.Handler, name: str = "sprig.ipc") -> logging.Logger:
    logger = logging.getLogger(f"{name}.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [handler]
    return logger


def fail(kind: type[Exception] = ValueError) -> None:
    raise kind("boom")


def test_the_same_error_passes_burst_times_then_is_summarised(
        limiter: RateLimitHandler, sink: Sink, clock: Clock) -> None:
    log = logger_for(limiter)
    for i in range(1000):
        log.warning("protocol error from %s: %s", f"pid={i}", "bad frame")
        clock.now += 0.01                       # 1000 in 10 s
    assert [line.split(": ")[0] for line in sink.lines] == [
        f"WARNING {log.name} protocol error from pid={i}" for i in range(3)]
    clock.now = 1000 + 61                         # the next window
    log.warning("protocol error from %s: %s", "pid=x", "bad frame")
    assert sink.lines[3:] == [
        f"WARNING {log.name} protocol error from pid=999: bad frame ... repeated 997 times "
        "in the last 61 s",
        f"WARNING {log.name} protocol error from pid=x: bad frame",
    ]


def test_info_and_debug_are_never_limited(limiter: RateLimitHandler, sink: Sink) -> None:
    log = logger_for(limiter)
    for i in range(100):
        log.info("connected %d", i)
        log.debug("detail %d", i)
    assert len(sink.lines) == 200


def test_different_templates_loggers_and_levels_are_different_errors(
        limiter: RateLimitHandler, sink: Sink) -> None:
    a, b = logger_for(limiter, "sprig.a"), logger_for(limiter, "sprig.b")
    for _ in range(10):
        a.warning("one %s", "x")
        a.warning("two %s", "x")
        a.error("one %s", "x")
        b.warning("one %s", "x")
    assert len(sink.lines) == 4 * 3


def test_a_traceback_is_written_once_per_interval_per_place(
        limiter: RateLimitHandler, sink: Sink, clock: Clock) -> None:
    log = logger_for(limiter)
    for _ in range(3):
        try:
            fail()
        except ValueError:
            log.exception("handler failed")
        clock.now += 1
    assert [r.exc_info is not None for r in sink.records] == [True, False, False]
    assert sink.lines[0].count("Traceback (most recent call last)") == 1
    assert "Traceback" not in "".join(sink.lines[1:])
    assert sink.lines[1] == (f"ERROR {log.name} handler failed [traceback omitted: already "
                             "written in the last 60 s]")
    # Another place (another exception type raised elsewhere): its own traceback.
    try:
        fail(KeyError)
    except KeyError:
        log.exception("handler failed")
    assert "Traceback" in sink.lines[-1]
    # After the interval, the first place's traceback again.
    clock.now += 60
    try:
        fail()
    except ValueError:
        log.exception("handler failed")
    assert "Traceback" in sink.lines[-1]


def test_the_callers_record_keeps_its_traceback(limiter: RateLimitHandler, sink: Sink) -> None:
    """Another handler on the same logger still gets the whole record."""
    log = logger_for(limiter)
    other = Sink()
    log.addHandler(other)
    for _ in range(2):
        try:
            fail()
        except ValueError:
            log.exception("failed")
    assert sink.records[1].exc_info is None
    assert all(r.exc_info is not None for r in other.records)


def test_flush_and_close_write_pending_summaries(clock: Clock, sink: Sink) -> None:
    limiter = RateLimitHandler([sink], interval_s=60, burst=1, clock=clock)
    log = logger_for(limiter)
    for _ in range(5):
        log.error("disk full")
    clock.now += 2.5
    limiter.flush()
    assert sink.lines == ["ERROR " + log.name + " disk full",
                          "ERROR " + log.name + " disk full ... repeated 4 times in the last 3 s"]
    log.error("disk full")                  # a new window: passes
    log.error("disk full")                  # suppressed
    limiter.close()
    assert sink.lines[-1].endswith("disk full ... repeated 1 time in the last 1 s")
    assert sink.closed


def test_summaries_of_quiet_errors_come_with_the_next_error(
        limiter: RateLimitHandler, sink: Sink, clock: Clock) -> None:
    log = logger_for(limiter)
    for _ in range(10):
        log.warning("garbage from %s", "a")
    clock.now += 100
    log.error("something else")
    assert sink.lines[-2:] == [
        f"WARNING {log.name} garbage from a ... repeated 7 times in the last 100 s",
        f"ERROR {log.name} something else",
    ]


def test_the_table_of_errors_is_bounded(clock: Clock, sink: Sink) -> None:
    """Preformatted messages (asyncio's) make each record a new error: the table stays small,
    and what falls out of it is still summarised."""
    limiter = RateLimitHandler([sink], interval_s=60, burst=1, max_keys=50, clock=clock)
    log = logger_for(limiter)
    log.error("first")
    log.error("first")
    for i in range(500):
        log.error(f"unique {i}")
    assert len(limiter._seen) <= 50
    assert "ERROR " + log.name + " first ... repeated 1 time in the last 1 s" in sink.lines
    limiter.close()


def test_target_levels_are_respected(clock: Clock) -> None:
    errors_only = Sink(logging.ERROR)
    everything = Sink()
    limiter = RateLimitHandler([errors_only, everything], clock=clock)
    log = logger_for(limiter)
    log.info("i")
    log.error("e")
    assert [r.getMessage() for r in errors_only.records] == ["e"]
    assert [r.getMessage() for r in everything.records] == ["i", "e"]


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"interval_s": 0}, "interval_s"), ({"burst": 0}, "burst"), ({"max_keys": 0}, "max_keys"),
])
def test_bad_settings_are_refused(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        RateLimitHandler([], **kwargs)  # type: ignore[arg-type]


# -- asyncio's refused accepts ---------------------------------------------------------------

@pytest.fixture
def captured() -> Iterator[Sink]:
    sink = Sink()
    loggers = [logging.getLogger("sprig.accept"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(sink)
    yield sink
    for logger in loggers:
        logger.removeHandler(sink)


async def test_a_refused_accept_is_one_line_without_traceback(captured: Sink) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        try:
            raise OSError(errno.EMFILE, "Too many open files")
        except OSError as exc:
            error = exc
        loop_exception_handler(loop, {"message": ACCEPT_FAILED, "exception": error,
                                      "socket": listener})
    (record,) = captured.records
    assert record.levelno == logging.ERROR and record.exc_info is None
    assert record.getMessage().startswith(
        f"refused a connection on 127.0.0.1:{port}: accept() failed with EMFILE "
        "(Too many open files)")
    assert "\n" not in captured.lines[0]


async def test_other_loop_errors_are_reported_as_asyncio_does(captured: Sink) -> None:
    loop = asyncio.get_running_loop()
    try:
        fail()
    except ValueError as exc:
        error = exc
    loop_exception_handler(loop, {"message": "Task exception was never retrieved",
                                  "exception": error})
    loop_exception_handler(loop, {"message": ACCEPT_FAILED,
                                  "exception": OSError(errno.EINVAL, "Invalid argument")})
    assert [r.name for r in captured.records] == ["asyncio", "asyncio"]
    assert all(r.exc_info for r in captured.records)


def test_a_long_message_is_summarised_whole(clock: Clock, sink: Sink) -> None:
    limiter = RateLimitHandler([sink], burst=1, clock=clock)
    log = logger_for(limiter)
    detail = "x" * 500
    log.warning("protocol error: %s\ntraceback-like second line", detail)
    log.warning("protocol error: %s\ntraceback-like second line", detail)
    limiter.flush()
    assert sink.lines[-1] == (f"WARNING {log.name} protocol error: {detail} ... repeated 1 time "
                              "in the last 1 s")


async def test_each_listener_is_its_own_repeated_error(captured: Sink) -> None:
    """The rate limit counts refused accepts per listener: one busy listener does not hide
    another one's refusals."""
    loop = asyncio.get_running_loop()
    limiter = RateLimitHandler([captured], burst=1)
    accept_log = logging.getLogger("sprig.accept")
    accept_log.removeHandler(captured)
    accept_log.addHandler(limiter)
    try:
        with socket.socket() as a, socket.socket(socket.AF_UNIX) as b:
            a.bind(("127.0.0.1", 0))
            b.bind("\0sprig-test-%listener")      # abstract, with a % in its name
            for _ in range(5):
                for sock in (a, b):
                    loop_exception_handler(loop, {
                        "message": ACCEPT_FAILED, "socket": sock,
                        "exception": OSError(errno.ENFILE, "Too many open files in system")})
    finally:
        accept_log.removeHandler(limiter)
    assert len(captured.lines) == 2
    assert "%listener" in captured.lines[1] and "ENFILE" in captured.lines[1]
