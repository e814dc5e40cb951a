"""One function's invocation figures, named as AWS Lambda's CloudWatch metrics name them.

* ``Invocations``: invocations that ran (successful or not; throttled ones excluded);
* ``Errors``: those that ended in a function error (``Handled`` or ``Unhandled``);
* ``Throttles``: invocations refused because the queue was full (``maxQueueSize``);
* ``Duration``: p50 and p99 over the last :data:`LATENCY_WINDOW` invocations (nearest rank).

Kept by the :class:`~sprig.functions.function.Function` from its start, whatever observes it:
a few integer increments and one bounded ``deque`` append per invocation. An optional
``listener`` hears each ending (the core turns it into ``invocation`` events, see
:mod:`sprig.events`); it is None unless something observes the function.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, Final

LATENCY_WINDOW: Final = 1024

#: (request id, duration in ms or None when throttled, function error kind or "Throttled")
Listener = Callable[[str, float | None, str | None], None]
THROTTLED: Final = "Throttled"


class InvocationStats:
    __slots__ = ("_recent", "errors", "invocations", "listener", "throttles")

    def __init__(self) -> None:
        self.invocations = 0
        self.errors = 0
        self.throttles = 0
        self._recent: deque[tuple[float, bool]] = deque(maxlen=LATENCY_WINDOW)
        self.listener: Listener | None = None

    def record(self, request_id: str, duration_ms: float, error: str | None) -> None:
        """An invocation ended after ``duration_ms`` (``error``: its function error kind)."""
        self.invocations += 1
        if error is not None:
            self.errors += 1
        self._recent.append((duration_ms, error is not None))
        if self.listener is not None:
            self.listener(request_id, duration_ms, error)

    def throttled(self, request_id: str) -> None:
        self.throttles += 1
        if self.listener is not None:
            self.listener(request_id, None, THROTTLED)

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0 < p <= 100) of the recent durations, in ms (nearest
        rank); None before the first invocation."""
        if not self._recent:
            return None
        ordered = sorted(ms for ms, _ in self._recent)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return round(ordered[rank - 1], 2)

    def recent(self, n: int) -> list[tuple[float, bool]]:
        """The last ``n`` (duration in ms, ended in an error), oldest first."""
        return [(round(ms, 2), err) for ms, err in list(self._recent)[-n:]]

    def snapshot(self) -> dict[str, Any]:
        return {"invocations": self.invocations, "errors": self.errors,
                "throttles": self.throttles, "p50Ms": self.percentile(50),
                "p99Ms": self.percentile(99)}
