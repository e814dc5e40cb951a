"""Services: the kernel's running form of a component, and its lifecycle driver.

A :class:`Service` owns one driver task that walks the Greengrass state machine::

    NEW --install--> INSTALLED --(deps up)--> STARTING --startup ok--> RUNNING
                                          \\-> RUNNING (run step) --exit 0--> FINISHED
    any step fails --> ERRORED --recover--> (restart from NEW) ... 3rd error --> BROKEN
    stop requested --> STOPPING --shutdown--> FINISHED

Subclasses say what installing, starting and stopping mean (:class:`GenericService` runs the
recipe's scripts; the Lambda service starts function workers; built-ins just report a state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sprig.core.lifecycle import ERROR_RESET_TIME_S, ErrorPolicy, ErrorTracker
from sprig.core.state import State
from sprig.errors import SprigError

if TYPE_CHECKING:
    from sprig.core.component import Component
    from sprig.core.kernel import Kernel

log = logging.getLogger("sprig.kernel")

StateListener = Callable[[str, State, State, str], None]


class ServiceError(Exception):
    """A lifecycle step failed; ``str()`` is the reason shown in ``component details``."""


class Service:
    """Base class: state, error tracking and the driver task; subclasses fill in the steps."""

    def __init__(self, kernel: Kernel, component: Component) -> None:
        self.kernel = kernel
        self.component = component
        self.state = State.NEW
        self.last_error = ""
        self.status_detail = ""
        # The recipe's lifecycle errorResetTime (nucleus Lifecycle.getErrorResetTime).
        self.tracker = ErrorTracker(ErrorPolicy(
            error_reset_time_s=component.error_reset_time_s or ERROR_RESET_TIME_S))
        #: time.monotonic() of the last state change (a deployment fails only on a component
        #: that went BROKEN after it began, as the nucleus compares getStateModTime)
        self.state_changed_at = time.monotonic()
        #: when it last entered RUNNING, and whether a deployment should watch it a while
        #: after that (a Run process that may still fail right after it started)
        self.running_since = 0.0
        self.watch_after_start = False
        #: a step failed in a way retrying cannot fix: the next error is BROKEN at once
        self.fatal = False
        self._driver: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self.fingerprint = ""

    @property
    def name(self) -> str:
        return self.component.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.component.version} {self.state}>"

    # -- state ---------------------------------------------------------------------------

    def set_state(self, new: State, reason: str = "") -> None:
        old = self.state
        if new is State.ERRORED:
            new = self.tracker.report(State.ERRORED, time.monotonic(), prior_state=old)
            if self.fatal:
                new = State.BROKEN
        elif old is not new:
            self.tracker.record_state(new, time.monotonic(), prior_state=old)
        if new in (State.ERRORED, State.BROKEN) and reason:
            self.last_error = reason
        if old is new:
            return
        self.state = new
        self.state_changed_at = time.monotonic()
        if new is State.RUNNING:
            self.running_since = self.state_changed_at
        log.info("%s: %s -> %s%s", self.name, old, new, f" ({reason})" if reason else "")
        self.kernel.state_changed(self, old, new, reason)

    # -- driver --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the lifecycle driver (no-op if it is already running)."""
        if self._driver is not None and not self._driver.done():
            return
        self._stop_requested = asyncio.Event()
        self._driver = asyncio.create_task(self._drive(), name=f"service:{self.name}")

    async def stop(self) -> None:
        """Stop the component (shutdown step, kill its processes) and wait for it."""
        self._stop_requested.set()
        driver = self._driver
        if driver is not None and not driver.done():
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
        self._driver = None
        if self.state not in (State.BROKEN, State.NEW, State.FINISHED) or self.has_processes():
            self.set_state(State.STOPPING)
            try:
                await self.shutdown()
            except ServiceError as e:
                log.warning("%s: shutdown: %s", self.name, e)
            self.set_state(State.FINISHED)

    async def restart(self) -> None:
        await self.stop()
        if self.state is not State.BROKEN:
            self.set_state(State.NEW)
            self.start()

    def mark_broken_from_store(self, reason: str) -> None:
        self.tracker.record_error(State.NEW, time.monotonic())
        self.state = State.BROKEN
        self.last_error = reason
        self.state_changed_at = 0.0        # broken before anything this core did

    async def _drive(self) -> None:
        while True:
            try:
                if self.state in (State.NEW, State.ERRORED, State.FINISHED, State.INSTALLED):
                    if self.state is not State.NEW:
                        self.set_state(State.NEW)
                    await self.install()
                    self.set_state(State.INSTALLED)
                await self.kernel.wait_for_dependencies(self)
                await self.run()
                return
            except asyncio.CancelledError:
                raise
            except (ServiceError, SprigError) as e:
                await self._on_error(str(e))
                if self.state is State.BROKEN:
                    return
            except Exception as e:  # a bug in Sprig must not kill the kernel
                log.exception("%s: unexpected error", self.name)
                await self._on_error(f"internal error: {e!r}")
                if self.state is State.BROKEN:
                    return

    async def _on_error(self, reason: str) -> None:
        """ERRORED: clean up, run recover, then the driver loop restarts (or BROKEN)."""
        try:
            await self.shutdown()
        except ServiceError as e:
            log.warning("%s: cleanup after error: %s", self.name, e)
        self.set_state(State.ERRORED, reason)
        if self.state is State.BROKEN:
            self.kernel.component_broken(self, reason)
            return
        try:
            await self.recover()
        except ServiceError as e:
            log.warning("%s: recover: %s", self.name, e)
        await self.kernel.restart_dependents(self)

    def report_error(self, reason: str) -> None:
        """Called from outside the driver (a pinned worker crashed): restart the lifecycle."""
        async def _handle() -> None:
            driver = self._driver
            if driver is not None and not driver.done():
                driver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driver
            await self._on_error(reason)
            if self.state is not State.BROKEN and not self._stop_requested.is_set():
                self._driver = asyncio.create_task(self._drive(), name=f"service:{self.name}")

        self.kernel.spawn(_handle(), name=f"error:{self.name}")

    # -- steps (override) ----------------------------------------------------------------

    async def install(self) -> None:
        """Install step; raise ServiceError on failure."""

    async def run(self) -> None:
        """Startup/run: set STARTING/RUNNING/FINISHED as appropriate; return when done or
        wait (until cancelled) while the component runs in the background."""
        self.set_state(State.RUNNING)
        await self._stop_requested.wait()

    async def shutdown(self) -> None:
        """Stop everything the component runs; must be safe to call when nothing runs."""

    async def recover(self) -> None:
        """The Recover step (after ERRORED)."""

    async def uninstall(self) -> None:
        """The Uninstall step: once, after the component stopped because a deployment removed
        it (nucleus ``requestUninstall`` in ``DeploymentConfigMerger.removeObsoleteServices``).
        Never raises: a failed uninstall is logged, the removal goes on."""

    def has_processes(self) -> bool:
        return False

    async def reconfigure(self, component: Component) -> bool:
        """A new desired form of the component arrived; return True if it was applied live,
        False if the kernel must restart the service."""
        return False


class BuiltinService(Service):
    """A built-in component (Lambda launcher, runtimes, manager, token exchange...).

    Sprig implements these inside the core; they only report the state Greengrass shows for them.
    """

    def __init__(self, kernel: Kernel, component: Component, final_state: State) -> None:
        super().__init__(kernel, component)
        self.final_state = final_state

    async def run(self) -> None:
        self.kernel.builtin_configured(self)     # e.g. the router's subscriptions take effect
        if self.final_state is State.FINISHED:
            self.set_state(State.FINISHED)
            return
        self.set_state(State.RUNNING)
        await self._stop_requested.wait()

    async def reconfigure(self, component: Component) -> bool:
        self.component = component
        self.kernel.builtin_configured(self)
        return True
