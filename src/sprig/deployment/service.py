"""The deployment queue worker: one deployment at a time, all or nothing.

Each deployment: plan (validate) → commit the new desired set together with a snapshot of the
old one (one SQLite transaction) → reconcile the running services → wait until every component is
RUNNING or FINISHED → SUCCEEDED, or roll back to the snapshot (ROLLBACK, the default) / leave
things as they are (DO_NOTHING).

It fails the moment a component goes BROKEN after it began, as the nucleus does
(``DeploymentConfigMerger.areAllServiceInDesiredState``: BROKEN with a state change newer than
the merge ends the wait), not at the timeout: its dependents would wait for it for ever, and so
would every deployment queued behind. A component whose Run process just started is watched
for ``deploymentStabilitySeconds`` (config.yaml, default 3 s) before the deployment calls it a
success, so a Run step that fails two seconds after it starts (and goes BROKEN on its third
try) fails its deployment instead of leaving it SUCCEEDED; the nucleus checks only the state.
A Bootstrap step that exited 100 has the kernel restart every component once they are up (the
nucleus restarts itself), and the deployment waits for them again.

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
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sprig.config import ConfigState
from sprig.deployment.health import Seen, broken_since, decided, settled, stability_wait, verdict
from sprig.deployment.outcome import configuration_refused, failed, refused, succeeded
from sprig.deployment.request import DO_NOTHING, WARNINGS, DeploymentRequest
from sprig.deployment.store import keep_set
from sprig.errors import SprigError, ValidationError
from sprig.events import Kind
from sprig.ipc.notices import NOTIFY_COMPONENTS, ComponentNotices, validation_proposals
from sprig.state.db import FAILED, IN_PROGRESS, SUCCEEDED

if TYPE_CHECKING:
    from sprig.core.kernel import Kernel
    from sprig.deployment.planner import Planner
    from sprig.state.db import ComponentRecord, DeploymentRecord, StateDB

log = logging.getLogger("sprig.deployment")


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
        #: what subscribed components are told before a deployment changes them (IPC)
        self.notices = ComponentNotices()
        self._notified: str | None = None
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
            self.kernel.deploying = True
            try:
                attempted = await self._apply(record)
                self._announce(record.id)
                await self.prune(attempted)
            finally:
                if self._notified is not None:
                    self.notices.updated(self._notified)
                    self._notified = None
                self.current = None
                self.kernel.deploying = False
                if self.kernel.restart_reasons:      # asked for by a rolled-back component
                    self.kernel.clear_restart_reasons()
                async with self._done:
                    self._done.notify_all()

    async def wait_finished(self, dep_id: str, timeout_s: float | None) -> DeploymentRecord | None:
        """The deployment once it is final *and* the device is in the state that says: a
        FAILED deployment is recorded (with the restored state) before its rollback runs,
        and a waiter must not be answered while the new versions are still there."""
        def finished() -> bool:
            rec = self.db.deployment(dep_id)
            return rec is None or (rec.status in (SUCCEEDED, FAILED) and self.current != dep_id)

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
            # A component this deployment changes may have gone BROKEN (persisted) before the
            # kill: the new core starts it BROKEN "from before", which would otherwise read as
            # left alone by the deployment.
            before = {r.name: r for r in snapshot}
            resumed_changes = {n for n, r in target.items()
                               if (b := before.get(n)) is None or b.version != r.version
                               or b.configuration != r.configuration}
        else:
            resumed_changes = set()
            try:
                target = self.planner.plan(request)
            except SprigError as e:
                log.warning("deployment %s rejected: %s", record.id, e)
                details = refused(e)
                self.db.fail_queued(record.id, details.failure_cause, details.to_json())
                return None
            refusal = await self._ask_components(record.id, request, target)
            if refusal is not None:
                log.warning("deployment %s: FAILED: %s", record.id, refusal)
                self.db.fail_queued(record.id, refusal, configuration_refused(refusal).to_json())
                return None
            snapshot = list(self.db.components().values())
            self.db.begin_deployment(record.id, target)
            self._announce(record.id)
            log.info("deployment %s: IN_PROGRESS (%s)", record.id,
                     ", ".join(f"{n}={r.version}" for n, r in sorted(target.items())) or "none")
        began = time.monotonic()
        await self.kernel.reconcile(target)
        unhealthy = await self._wait_healthy(target, began, resumed_changes)
        if unhealthy is None and self.kernel.restart_reasons:
            began = time.monotonic()
            await self.kernel.restart_components()
            unhealthy = await self._wait_healthy(target, began)
        if unhealthy is None:
            self.db.finish_deployment(record.id, SUCCEEDED, details=succeeded().to_json())
            log.info("deployment %s: SUCCEEDED", record.id)
            return None
        reason, broken = unhealthy
        attempted = {n: r.version for n, r in target.items()}
        if request.failure_handling == DO_NOTHING:
            self.db.finish_deployment(record.id, FAILED, reason,
                                      details=failed(reason, broken, rollback=False).to_json())
            log.warning("deployment %s: FAILED: %s (DO_NOTHING: left as is)", record.id, reason)
            return attempted
        cause = f"{reason}; rolled back"
        self.db.finish_deployment(record.id, FAILED, cause, restore=snapshot,
                                  details=failed(cause, broken, rollback=True).to_json())
        log.warning("deployment %s: FAILED: %s; rolling back", record.id, reason)
        try:
            await self.kernel.reconcile({r.name: r for r in snapshot})
        except Exception:
            self.db.set_status_details(record.id, failed(
                cause, broken, rollback=True, rollback_failed=True).to_json())
            raise
        return attempted

    async def _ask_components(self, dep_id: str, request: DeploymentRequest,
                              target: dict[str, ComponentRecord]) -> str | None:
        """Before anything changes: with NOTIFY_COMPONENTS, wait until subscribed components
        stop deferring the update; then have running components whose configuration changes
        validate it. Why the deployment must fail, or None. Nothing is committed before this,
        so a core killed meanwhile asks again."""
        if request.update_policy.action == NOTIFY_COMPONENTS:
            log.info("deployment %s: notifying components of the update (up to %d s each "
                     "round)", dep_id, request.update_policy.timeout_s)
            self._notified = dep_id      # postUpdateEvent when it ends, whatever the end
            await self.notices.wait_until_safe(dep_id, request.update_policy.timeout_s)
        current = {n: (c.version, c.configuration)
                   for n, c in self.kernel.components.items()
                   if n in self.kernel.services}
        proposed = {n: (r.version, ConfigState.from_document(
            r.configuration, source=f"component {n}").effective) for n, r in target.items()}
        return await self.notices.validate(dep_id, validation_proposals(current, proposed),
                                           request.validation_timeout_s)

    async def _wait_healthy(self, target: dict[str, ComponentRecord], began: float,
                            changed: set[str] | frozenset[str] = frozenset(),
                            ) -> tuple[str, list[str]] | None:
        """None when every component is up (and a just-started Run process stayed up for the
        stability window); else why not and which components went BROKEN. Returns as soon
        as a component goes BROKEN."""
        names = [n for n, r in target.items() if not r.user_stopped]
        services = self.kernel.services
        window = self.kernel.settings.deployment_stability_s
        timeout = self.kernel.settings.deployment_timeout_s

        def seen() -> list[Seen]:
            return [Seen(s.name, s.state, s.state_changed_at, s.running_since,
                         s.watch_after_start, s.last_error)
                    for s in (services[n] for n in names if n in services)]

        deadline = time.monotonic() + timeout
        ok = await self.kernel.wait_until(lambda: decided(seen(), began, changed), timeout)
        while ok and not broken_since(seen(), began, changed) and \
                (wait := stability_wait(seen(), began, window, time.monotonic())) > 0:
            # Any state change re-evaluates; a component errors, restarts, goes BROKEN.
            await self.kernel.wait_until(
                lambda: not settled(seen()) or bool(broken_since(seen(), began, changed)), wait)
            ok = await self.kernel.wait_until(lambda: decided(seen(), began, changed),
                                              max(0.0, deadline - time.monotonic()))
        return verdict(seen(), began, changed, in_time=ok, timeout_s=timeout)

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
        self._announce(record.id)
        return record

    def _announce(self, dep_id: str) -> None:
        """A deployment event (sprig.events) with the record as it is now: QUEUED, IN_PROGRESS,
        SUCCEEDED or FAILED; secret and environment values in its updates redacted."""
        events = self.kernel.events
        if not events.wants(Kind.DEPLOYMENT):
            return
        from sprig.config.visibility import redact_deployment

        record = self.db.deployment(dep_id)
        if record is not None:
            events.publish(Kind.DEPLOYMENT, redact_deployment(record.summary()))
