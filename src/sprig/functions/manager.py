"""The Lambda manager: every deployed function, found by component name, function name or ARN.

:class:`FunctionManager` implements :class:`~sprig.functions.invocation.Invoker`, the one entry
point of the invoke API, ``sprig invoke``, event sources and the Core SDK. The kernel adds a
:class:`~sprig.functions.function.Function` when a Lambda component starts and removes it when
the component goes away. With an :class:`~sprig.functions.durable.EventJournal` (the core has
one), every function it holds stores its acknowledged Event invocations there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from sprig.functions.durable import EventJournal
from sprig.functions.errors import FunctionNotFound
from sprig.functions.function import Function
from sprig.functions.invocation import Invocation, InvocationResult


class FunctionManager:
    """All functions of the core, by component name."""

    def __init__(self, events: EventJournal | None = None) -> None:
        self._functions: dict[str, Function] = {}
        self.events = events

    def add(self, function: Function) -> None:
        """Hold ``function`` (before its :meth:`~Function.start`, which queues its stored
        events)."""
        function.events = self.events
        self._functions[function.name] = function

    def remove(self, component_name: str) -> Function | None:
        return self._functions.pop(component_name, None)

    def get(self, component_name: str) -> Function | None:
        return self._functions.get(component_name)

    def __iter__(self) -> Iterator[Function]:
        return iter(list(self._functions.values()))

    def find(self, name: str) -> Function:
        """By component name, function name, versioned or unversioned ARN (``$LATEST`` or the
        deployed version as qualifier), or ``name:version``.

        Raises:
            FunctionNotFound
        """
        fn = self._functions.get(name)
        if fn is not None:
            return fn
        for fn in self._functions.values():
            spec = fn.spec
            if name.startswith("arn:"):
                if name in (spec.function_arn, spec.unversioned_arn,
                            f"{spec.unversioned_arn}:$LATEST"):
                    return fn
                continue
            fname, _, qualifier = name.partition(":")
            if spec.function_name == fname and qualifier in ("", "$LATEST",
                                                             spec.function_version):
                return fn
        raise FunctionNotFound(name)

    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        return await self.find(function).invoke(invocation, want_log_tail)

    def submit(self, function: str, invocation: Invocation, *,
               want_log_tail: bool = False) -> asyncio.Future[InvocationResult]:
        return self.find(function).submit(invocation, want_log_tail)

    async def stop_all(self) -> None:
        await asyncio.gather(*(fn.stop() for fn in self._functions.values()),
                             return_exceptions=True)

    async def forget_events_except(self, deployed: set[str]) -> int:
        """Delete the stored events of functions not in ``deployed`` (component names): a
        deployment removed them. Returns how many were deleted."""
        if self.events is None:
            return 0
        return await self.events.forget_except(deployed)

    async def aclose(self) -> None:
        """Stop every function, then commit and close the event journal."""
        await self.stop_all()
        if self.events is not None:
            await self.events.aclose()
