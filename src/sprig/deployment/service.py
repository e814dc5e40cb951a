"""The deployment queue worker: one deployment at a time, all or nothing.

Each deployment: plan (validate) → commit the new desired set together with a snapshot of the
old one (one SQLite transaction) → reconcile the running services → wait until every component is
RUNNING or FINISHED (failure: one goes BROKEN, or the timeout passes) → SUCCEEDED, or roll back
to the snapshot (ROLLBACK, the default) / leave things as they are (DO_NOTHING).

A core killed at any point restarts from the database: the desired set is either the old or the
new one, never a mix, and an interrupted deployment is resumed (and rolled back if it fails).

After each deployment the package store is pruned (``deployment.store``: current and previous
version of each component, plus what queued deployments and a rollback need); the history in
``state.db`` is trimmed in the same commit that finishes the deployment. A new core cleans what a
killed one left while staging before any component starts, and prunes before the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sprig.core.state import State
from sprig.deployment.request import DO_NOTHING, WARNINGS, DeploymentRequest
from sprig.deployment.store import keep_set
from sprig.errors import SprigError, ValidationError
from sprig.state.db import FAILED, IN_PROGRESS, SUCCEEDED

if TYPE_CHECKING:
    from sprig.core.kernel import Kernel
    from sprig.deployment.planner import Planner
    from sprig.state.db import ComponentRecord, DeploymentRecord, StateDB

log = logging.getLogger("sprig.deployment")

#: After every component is RUNNING or FINISHED, how long a deployment keeps watching for one
#: that goes BROKEN (a Run script failing right after it started).
STABILITY_WINDOW_S = 0.5

#: The largest deployment document accepted, as the nucleus (``MAX_DEPLOYMENT_DOCUMENT_SIZE_BYTES``
#: in ``DeploymentDocumentDownloader``, error ``DEPLOYMENT_DOCUMENT_SIZE_EXCEEDED``).
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024


class DeploymentService:
    def __init__(self, kernel: Kernel, planner: Planner, db: StateDB) -> None:
        self.kernel = kernel
        self.planner = planner
        self.db = db
        self._wakeup = asyncio.Event()
        self._done = asyncio.Condition()
        self.current: str | None = None
        planner.limits = kernel.settings.deployment_limits
        # Before the core starts the desired components (run() comes later): a version a killed
        # core had renamed aside must be back in place first.
        try:
            cleaned = planner.store.sweep_leftovers()
            if cleaned:
                log.warning("removed %d leftover(s) of an interrupted staging", cleaned)
        except OSError as e:
            log.warning("could not clean the package store: %s", e)

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Process the queue until cancelled (after pruning what a killed core left)."""
        self.db.trim_history()
        await self.prune()
        while True:
            record = self.db.next_pending()
            if record is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self.current = record.id
            try:
                attempted = await self._apply(record)
                await self.prune(attempted)
            finally:
                self.current = None
                async with self._done:
                    self._done.notify_all()

    async def wait_finished(self, dep_id: str, timeout_s: float | None) -> DeploymentRecord | None:
        def finished() -> bool:
            rec = self.db.deployment(dep_id)
            return rec is None or rec.status in (SUCCEEDED, FAILED)

        try:
            async with asyncio.timeout(timeout_s):
                async with self._done:
                    await self._done.wait_for(finished)
        except TimeoutError:
            pass
        return self.db.deployment(dep_id)

    async def prune(self, attempted: Mapping[str, str] | None = None) -> None:
        """Remove stale component versions (best effort, as the nucleus: a failure is logged,
        never fails a deployment). ``attempted``: the versions a failed deployment tried."""
        try:
            keep = keep_set({n: r.version for n, r in self.db.components().items()},
                            self.db.previous_versions(), self.db.pinned_versions(),
                            attempted or {})
            bins = self.planner.store.prune(keep)
        except (OSError, SprigError, ValueError) as e:
            log.warning("could not remove stale component versions: %s", e)
            return
        if bins:
            log.info("removed stale component versions; kept %s", ", ".join(
                f"{n} {'/'.join(sorted(v))}" for n, v in sorted(keep.items())) or "none")
            await asyncio.to_thread(self.planner.store.empty, bins)

    async def _apply(self, record: DeploymentRecord) -> dict[str, str] | None:
        """Apply one deployment; returns the versions it tried if it failed (kept a while)."""
        request = DeploymentRequest.from_document(record.document)
        if record.status == IN_PROGRESS:
            log.info("deployment %s was interrupted by a core restart; resuming it", record.id)
            snapshot = record.snapshot or []
            target = self.db.components()
        else:
            try:
                target = self.planner.plan(request)
            except SprigError as e:
                log.warning("deployment %s rejected: %s", record.id, e)
                self.db.fail_queued(record.id, f"rejected: {e}")
                return None
            snapshot = list(self.db.components().values())
            self.db.begin_deployment(record.id, target)
            log.info("deployment %s: IN_PROGRESS (%s)", record.id,
                     ", ".join(f"{n}={r.version}" for n, r in sorted(target.items())) or "none")
        await self.kernel.reconcile(target)
        reason = await self._wait_healthy(target)
        if reason is None:
            self.db.finish_deployment(record.id, SUCCEEDED)
            log.info("deployment %s: SUCCEEDED", record.id)
            return None
        attempted = {n: r.version for n, r in target.items()}
        if request.failure_handling == DO_NOTHING:
            self.db.finish_deployment(record.id, FAILED, reason)
            log.warning("deployment %s: FAILED: %s (DO_NOTHING: left as is)", record.id, reason)
            return attempted
        self.db.finish_deployment(record.id, FAILED, f"{reason}; rolled back",
                                  restore=snapshot)
        log.warning("deployment %s: FAILED: %s; rolling back", record.id, reason)
        await self.kernel.reconcile({r.name: r for r in snapshot})
        return attempted

    async def _wait_healthy(self, target: dict[str, ComponentRecord]) -> str | None:
        names = [n for n, r in target.items() if not r.user_stopped]

        def settled() -> bool:
            states = [self.kernel.services[n].state for n in names if n in self.kernel.services]
            return all(s in (State.RUNNING, State.FINISHED, State.BROKEN) for s in states)

        def any_broken() -> bool:
            return any(self.kernel.services[n].state is State.BROKEN
                       for n in names if n in self.kernel.services)

        timeout = self.kernel.settings.deployment_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ok = await self.kernel.wait_until(settled, timeout)
        # A Run script is RUNNING the moment it starts: one that fails at once is still on its
        # way to BROKEN. Watch the components a little longer before calling it a success.
        if ok and not any_broken():
            await self.kernel.wait_until(any_broken, STABILITY_WINDOW_S)
            ok = await self.kernel.wait_until(settled, max(0.0, deadline - loop.time()))
        broken = [n for n in names
                  if n in self.kernel.services and self.kernel.services[n].state is State.BROKEN]
        if broken:
            details = "; ".join(f"{n}: {self.kernel.services[n].last_error}" for n in broken)
            return f"component {', '.join(broken)} BROKEN ({details})"
        if not ok:
            waiting = [f"{n} ({self.kernel.services[n].state})" for n in names
                       if n in self.kernel.services and self.kernel.services[n].state
                       not in (State.RUNNING, State.FINISHED)]
            return (f"timed out after {self.kernel.settings.deployment_timeout_s:g} s waiting "
                    f"for {', '.join(waiting)} to be RUNNING or FINISHED")
        return None

    def submit(self, request: DeploymentRequest, recipe_dir: str | None,
               artifact_dir: str | None) -> DeploymentRecord:
        """Validate now (raising ValidationError with nothing changed), then enqueue."""
        from pathlib import Path

        document = request.to_document()
        size = len(json.dumps(document).encode("utf-8"))
        if size > MAX_DOCUMENT_BYTES:
            raise ValidationError("", f"the deployment document is {size} bytes, over the "
                                  f"limit of {MAX_DOCUMENT_BYTES} bytes", value=size,
                                  allowed=f"at most {MAX_DOCUMENT_BYTES} bytes (as Greengrass: "
                                  "DEPLOYMENT_DOCUMENT_SIZE_EXCEEDED)")
        accepted = self.planner.accept(request, Path(recipe_dir) if recipe_dir else None,
                                       Path(artifact_dir) if artifact_dir else None)
        if accepted.warnings:
            document[WARNINGS] = list(accepted.warnings)
        record = self.db.enqueue_deployment(
            document, pins={n: r.version for n, r in accepted.records.items()})
        for warning in accepted.warnings:
            log.warning("deployment %s: %s", record.id, warning)
        self.wake()
        return record
