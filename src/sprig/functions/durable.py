"""Durable Event invocations: an acknowledged ``Event`` is in ``state.db`` before its 202.

Which invocations: ``Event`` invocations whose caller is told "accepted" and has nothing else
to rely on — the invoke API, ``sprig invoke`` (management API) and the Core SDK v1 ``invoke``
(see :data:`~sprig.functions.invocation.DURABLE_SOURCES`). Event-source deliveries (local
``PUB_SUB`` and ``IOT_CORE`` topics, V1 publishes routed to a function) are not: the publisher
was answered before any routing, the bus and the bridge queue messages in memory and drop them
when a subscriber's queue is full, and the MQTT client acknowledges QoS 1 on receipt — storing
them would add an fsync to the messaging hot path without closing those windows.

The guarantee: at least once, not exactly once. An event runs after any crash or restart of the
core (or of its function's component) until it *finished* — answered, failed or timed out —
keeping its request id, so a handler can deduplicate; an event whose worker was killed by a
stop or a crash runs again. Finished events are deleted lazily (a crash before the delete
commits runs them again). Events of a function that a deployment removed are deleted at the next
core start.

The cost: one SQLite commit (an fsync of the WAL) per batch. Writes go through one worker
thread in FIFO order; what arrives while a commit is under way is committed together in the next
one (group commit), so concurrent callers share fsyncs and the event loop never waits on the
disk. On a full disk :meth:`EventJournal.record` raises :class:`~sprig.disk.DiskFull` naming
``state.db``: the caller gets an error, never a 202 for an event that is not stored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from sprig.functions.invocation import Invocation, InvocationType
from sprig.state.db import EventStore, PendingEvent

log = logging.getLogger("sprig.functions.durable")
T = TypeVar("T")


@dataclass
class _Add:
    event: PendingEvent
    done: asyncio.Future[None]


class EventJournal:
    """The pending Event invocations of every function, stored with group commits."""

    def __init__(self, open_store: Callable[[], EventStore]) -> None:
        self._open_store = open_store
        self._store: EventStore | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sprig-events")
        self._adds: list[_Add] = []
        self._removes: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0                    # for tests and benchmarks: batches committed

    async def _call(self, fn: Callable[[EventStore], T]) -> T:
        def run() -> T:
            if self._store is None:
                self._store = self._open_store()
            return fn(self._store)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def record(self, function: str, inv: Invocation) -> None:
        """Store ``inv`` for ``function``; returns once it is committed.

        Raises:
            DiskFull: no space left in ``state.db`` (the event is not stored).
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._adds.append(_Add(PendingEvent(inv.request_id, function, inv.payload,
                                            inv.client_context, inv.source, time.time()), done))
        self._kick()
        await done

    def finished(self, request_id: str) -> None:
        """The event finished: delete it with the next commit (not waited for)."""
        self._removes.append(request_id)
        self._kick()

    async def pending(self, function: str) -> list[Invocation]:
        """The stored events of ``function``, oldest first, with their request ids."""
        events = await self._call(lambda store: store.pending(function))
        return [Invocation(payload=e.payload, invocation_type=InvocationType.EVENT,
                           client_context=e.client_context, request_id=e.request_id,
                           source=e.source) for e in events]

    async def forget_except(self, functions: Iterable[str]) -> int:
        """Delete the events of functions no longer deployed; returns how many."""
        keep = list(functions)
        return await self._call(lambda store: store.forget_except(keep))

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="event-journal")

    async def _flush(self) -> None:
        """Commit what is waiting, in batches, until nothing is."""
        while self._adds or self._removes:
            adds, self._adds = self._adds, []
            removes, self._removes = self._removes, []
            events = [a.event for a in adds]
            try:
                await self._call(functools.partial(EventStore.apply, add=events,
                                                   remove=removes))
            except Exception as e:
                # Deletes are retried with the next batch (a crash meanwhile only runs the
                # event again); the callers of the adds get the error, no 202.
                self._removes[:0] = removes
                for a in adds:
                    if not a.done.done():
                        a.done.set_exception(e)
                if not adds:
                    return          # only deletes failed: wait for the next write to retry
                continue
            self.commits += 1
            for a in adds:
                if not a.done.done():
                    a.done.set_result(None)

    async def drain(self) -> None:
        """Wait until what is waiting was committed (or failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def aclose(self) -> None:
        """Commit what is waiting (best effort), then close the store."""
        try:
            await self.drain()
        except Exception as e:          # logged: the core is stopping
            log.warning("pending events: last commit failed: %s", e)
        if self._store is not None:
            store, self._store = self._store, None
            await asyncio.get_running_loop().run_in_executor(self._executor, store.close)
        self._executor.shutdown(wait=True)
