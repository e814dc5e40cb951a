"""Rate limiting of repeated errors in the core's log, and refused accepts as one line.

Why: one misbehaving peer can make the core log the same error thousands of times a second (a
sandboxed function sending IPC garbage in a loop; a client holding connections until the core
runs out of file descriptors, when asyncio logs one traceback per refused ``accept()``). Size
rotation bounds the disk, but the flood would still push every useful line out of the rotated
files within seconds. So the core's log records go through a :class:`RateLimitHandler` first:

* records below ``min_level`` (WARNING by default) pass untouched: only repeated *errors* are
  limited, the ordinary INFO story of the core is never summarised;
* the same error -- same logger, level and message template (the format string, not the
  formatted text), and for an exception the same type raised at the same place -- passes at most
  ``burst`` times per ``interval_s``; the rest are counted, and when that error next comes after
  the interval (or when the handler is flushed or closed) one line says
  ``<the last one> ... repeated N times in the last M s``;
* a traceback is written at most once per ``interval_s`` per place (where it was logged, and
  the exception type and the line it was raised at); later records of that place are written
  without it, saying so.

The clock is injectable, so the behaviour is tested without sleeping. The table of errors seen
is bounded (``max_keys``): preformatted messages (asyncio's) can make every record a new key.

:func:`loop_exception_handler` turns asyncio's "socket.accept() out of system resource" report
(EMFILE/ENFILE/ENOBUFS/ENOMEM; one per failed ``accept()``, with a traceback) into one line
without a traceback, so every server of the core (invoke API, management socket, IPC, V1 SDK
endpoints, Runtime API), whose accept loop is asyncio's, reports it alike.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_INTERVAL_S: Final = 60.0
DEFAULT_BURST: Final = 10
DEFAULT_MAX_KEYS: Final = 1024
_TEMPLATE_CHARS: Final = 200       # of a message template, in the key of an error
_SUMMARY_CHARS: Final = 2000       # of the last message, in its summary line
_SWEEP_EVERY_S: Final = 1.0
TRACEBACK_OMITTED: Final = " [traceback omitted: already written in the last {0:g} s]"

_Key = tuple[str, int, str, str, str]


@dataclass
class _Seen:
    """One error's current window."""

    start: float
    count: int = 0
    suppressed: int = 0
    last: logging.LogRecord | None = None


def _first_line(text: str, limit: int = _TEMPLATE_CHARS) -> str:
    return text.split("\n", 1)[0][:limit]


def _raised_at(record: logging.LogRecord) -> tuple[str, str]:
    """(exception type, ``file:line`` of the innermost frame) of the record's exception."""
    if not record.exc_info or record.exc_info[0] is None:
        return "", ""
    kind, _, tb = record.exc_info
    place = ""
    while tb is not None:
        place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return kind.__qualname__, place


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:   # a record with bad arguments must not break the summary
        return str(record.msg)


class RateLimitHandler(logging.Handler):
    """Forward records to ``targets``, summarising repeated errors (see the module doc)."""

    def __init__(self, targets: Iterable[logging.Handler], *,
                 interval_s: float = DEFAULT_INTERVAL_S, burst: int = DEFAULT_BURST,
                 min_level: int = logging.WARNING, max_keys: int = DEFAULT_MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys!r}")
        super().__init__()
        self.targets = list(targets)
        self.interval_s = interval_s
        self.burst = burst
        self.min_level = min_level
        self.max_keys = max_keys
        self._clock = clock
        self._seen: dict[_Key, _Seen] = {}
        self._tracebacks: dict[tuple[str, int, str, str], float] = {}
        self._last_sweep = -math.inf

    # -- logging.Handler -------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < self.min_level:
            self._forward(record)
            return
        now = self._clock()
        if now - self._last_sweep >= _SWEEP_EVERY_S:
            self._sweep(now)
        key = self._key(record)
        seen = self._seen.get(key)
        if seen is None or now - seen.start >= self.interval_s:
            if seen is not None:
                self._summarise(seen, now)
                del self._seen[key]          # re-inserted last: the table stays oldest first
            elif len(self._seen) >= self.max_keys:
                oldest = next(iter(self._seen))
                self._summarise(self._seen.pop(oldest), now)
            seen = self._seen[key] = _Seen(start=now)
        seen.count += 1
        if seen.count > self.burst:
            seen.suppressed += 1
            seen.last = record
            return
        self._forward(self._traceback_once(record, now))

    def flush(self) -> None:
        """Write the pending summaries now (e.g. before shutting down), then flush targets."""
        self.acquire()
        try:
            now = self._clock()
            for seen in self._seen.values():
                self._summarise(seen, now)
            self._seen.clear()
        finally:
            self.release()
        for target in self.targets:
            target.flush()

    def close(self) -> None:
        self.flush()
        for target in self.targets:
            target.close()
        super().close()

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _key(record: logging.LogRecord) -> _Key:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        kind, place = _raised_at(record)
        return (record.name, record.levelno, _first_line(template), kind, place)

    def _forward(self, record: logging.LogRecord) -> None:
        for target in self.targets:
            if record.levelno >= target.level:
                target.handle(record)

    def _traceback_once(self, record: logging.LogRecord, now: float) -> logging.LogRecord:
        if not record.exc_info or record.exc_info[0] is None:
            return record
        kind, place = _raised_at(record)
        where = (record.pathname, record.lineno, kind, place)
        written = self._tracebacks.get(where)
        if written is None or now - written >= self.interval_s:
            self._tracebacks[where] = now
            return record
        # A copy: the caller's record may still be handled elsewhere with its traceback.
        bare = logging.makeLogRecord(record.__dict__)
        bare.msg = _message(record) + TRACEBACK_OMITTED.format(self.interval_s)
        bare.args = None
        bare.exc_info = None
        bare.exc_text = None
        bare.stack_info = None
        return bare

    def _summarise(self, seen: _Seen, now: float) -> None:
        if not seen.suppressed or seen.last is None:
            return
        last = seen.last
        seconds = max(1, math.ceil(now - seen.start))
        summary = logging.makeLogRecord({
            "name": last.name, "levelno": last.levelno, "levelname": last.levelname,
            "pathname": last.pathname, "lineno": last.lineno, "funcName": last.funcName,
            "msg": "%s ... repeated %d %s in the last %d s",
            "args": (_first_line(_message(last), _SUMMARY_CHARS), seen.suppressed,
                     "time" if seen.suppressed == 1 else "times", seconds),
        })
        self._forward(summary)
        seen.suppressed = 0
        seen.last = None

    def _sweep(self, now: float) -> None:
        """Summarise and forget the windows that are over; forget old traceback times."""
        self._last_sweep = now
        over = [k for k, s in self._seen.items() if now - s.start >= self.interval_s]
        for key in over:
            self._summarise(self._seen.pop(key), now)
        stale = [k for k, t in self._tracebacks.items() if now - t >= self.interval_s]
        for where in stale:
            del self._tracebacks[where]


# -- asyncio's refused accepts ---------------------------------------------------------------

ACCEPT_FAILED: Final = "socket.accept() out of system resource"
_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
accept_log = logging.getLogger("sprig.accept")


def _address(sock: Any) -> str:
    try:
        name = sock.getsockname()
    except (OSError, AttributeError):
        return "a listening socket"
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name) or "a listening socket"


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An asyncio exception handler: a refused accept is one line, the rest as asyncio does.

    asyncio's selector loop reports each ``accept()`` that fails for lack of a resource (fd
    limit reached, no buffers) through the loop's exception handler, with a traceback, and
    retries after a second -- up to its backlog (100) times per wake-up. The listener keeps
    working once descriptors are free again, so this is one ERROR line (rate-limited like any
    repeated error), not a traceback.
    """
    exc = context.get("exception")
    if (context.get("message") == ACCEPT_FAILED and isinstance(exc, OSError)
            and exc.errno in _RESOURCE_ERRNOS):
        # The address is part of the template: each listener is its own repeated error.
        where = _address(context.get("socket")).replace("%", "%%")
        accept_log.error(
            f"refused a connection on {where}: accept() failed with %s (%s); the listener "
            "pauses and retries every second until descriptors or buffers are free",
            errno.errorcode.get(exc.errno or 0, "?"), exc.strerror)
        return
    loop.default_exception_handler(context)
