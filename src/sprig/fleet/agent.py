"""The device's fleet agent, inside the core: takes deployments from the broker, runs them
through the ordinary deployment pipeline, and reports (shapes: ``docs/fleet.md``).

* **Presence.** On every connection it publishes ``ONLINE`` (retained) on its presence topic;
  the connection's last will publishes ``OFFLINE`` there if the core vanishes; a graceful stop
  publishes ``OFFLINE`` itself.
* **Executions.** It subscribes to its own executions only (``P/things/<thing>/jobs/+/+/notify``)
  and takes up those of its configured thing groups and of its own thing, one at a time (a newer
  execution for a target replaces one still waiting). For each: stale (an older
  ``creationTimestamp`` than the target's last one) → REJECTED; else IN_PROGRESS, the union of
  its targets' roots (a conflict fails naming the targets), the recipes and artifacts fetched
  from the component store with their digests checked, one local deployment through
  :class:`~sprig.deployment.service.DeploymentService` (so it queues with local ones, and rolls
  back as they do), then SUCCEEDED / FAILED with the nucleus's ``statusDetails``.
* **Health.** The Fleet Status message (retained) at launch and each reconnect, after each
  deployment, when a component goes ERRORED or BROKEN, and every
  ``fleet.statusPublishIntervalSeconds``.

What it remembers is in ``state.db`` (:mod:`sprig.fleet.device_state`): a core killed in the
middle of a fleet deployment resumes it (the local deployment resumes, the agent waits for it)
and reports it; statuses are published again on every reconnect, so a broker that lost them
gets them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sprig import __version__
from sprig.errors import SprigError, ValidationError
from sprig.fleet.device_state import DeviceFleetState, ExecutionRecord
from sprig.fleet.document import FleetDeployment, missing_capabilities, parse_document
from sprig.fleet.health import ComponentInfo, health_message
from sprig.fleet.status import (
    DetailedStatus,
    ExecutionStatus,
    Outcome,
    classify_local_failure,
    execution_update,
    failed,
    now_ms,
    rejected,
    succeeded,
)
from sprig.fleet.store import ComponentFetcher, FleetFailure, write_recipe
from sprig.fleet.targets import TargetRoots, VersionConflict, plan_roots
from sprig.fleet.topics import THING, THING_GROUP, FleetTopics, Target

if TYPE_CHECKING:
    from sprig.core.kernel import Kernel
    from sprig.core.state import State
    from sprig.deployment.service import DeploymentService
    from sprig.fleet_settings import FleetSettings
    from sprig.mqtt.bridge import MqttBridge
    from sprig.pubsub.bus import Message

log = logging.getLogger("sprig.fleet")

OWNER = "fleet"
#: An execution the core was killed in before its local deployment was queued: taken up again
#: (never published).
INTERRUPTED = "INTERRUPTED"
#: How long a stopping core waits for its OFFLINE presence to reach the broker.
STOP_FLUSH_S = 2.0
#: Component state changes are reported at most this often (a restart storm is one message).
HEALTH_DEBOUNCE_S = 1.0
#: After a deployment (a rollback restarts components), how long the Fleet Status message waits
#: for the components to settle (RUNNING, FINISHED, BROKEN) so it does not show them half-way.
HEALTH_SETTLE_S = 10.0


class FleetAgent:
    def __init__(self, settings: FleetSettings, kernel: Kernel, deployments: DeploymentService,
                 bridge: MqttBridge) -> None:
        self.settings = settings
        self.kernel = kernel
        self.deployments = deployments
        self.bridge = bridge
        self.thing = kernel.settings.thing_name
        self.topics = FleetTopics(settings.topic_prefix)
        self.state = DeviceFleetState.load(kernel.db)
        self.downloads = kernel.layout.run / "fleet"
        self._pending: dict[str, dict[str, Any]] = {}     # target -> newest execution waiting
        self._wake = asyncio.Event()
        self._health_due = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sub: Any = None
        self._sequence = 0
        self.busy: str | None = None
        self.last_target: str | None = None
        self._builtins: list[Any] | None = None
        bridge.set_will(self.topics.presence(self.thing), self._presence("OFFLINE", "lost"))
        kernel.add_state_listener(self._state_changed)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        shutil.rmtree(self.downloads, ignore_errors=True)
        self._sub = self.bridge.subscribe(self.topics.notify_filter(self.thing), self._on_notify,
                                          owner=OWNER)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._connections(), name="fleet-connections"),
                       loop.create_task(self._worker(), name="fleet-worker"),
                       loop.create_task(self._health_loop(), name="fleet-health")]
        log.info("fleet: thing %s in groups %s, topics under %s/, component store %s",
                 self.thing, ", ".join(self.settings.thing_groups) or "(none)",
                 self.settings.topic_prefix, self.settings.store.uri)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sub is not None:
            self._sub.close()
        if self.bridge.connected:
            await self.bridge.publish(self.topics.presence(self.thing),
                                      self._presence("OFFLINE", "stopped"), 1, retain=True)
            with contextlib.suppress(TimeoutError):
                await self.bridge.flush(STOP_FLUSH_S)

    # -- broker connection ---------------------------------------------------------------

    def _presence(self, status: str, reason: str | None = None) -> bytes:
        msg: dict[str, Any] = {"thing": self.thing, "status": status,
                               "thingGroups": list(self.settings.thing_groups)}
        if reason is not None:
            msg["reason"] = reason
        if reason != "lost":          # a will is written once, at connect: no time in it
            msg["timestamp"] = now_ms()
        return json.dumps(msg).encode()

    async def _connections(self) -> None:
        """On every (re)connection: presence, health, and every status again."""
        seen = [0]
        while True:
            await self.bridge.wait_until(
                lambda: self.bridge.connected and self.bridge.connections != seen[0], None)
            first = seen[0] == 0
            seen[0] = self.bridge.connections
            await self._publish(self.topics.presence(self.thing), self._presence("ONLINE"))
            await self.publish_health("NUCLEUS_LAUNCH" if first else "RECONNECT")
            for key, rec in sorted(self.state.executions.items()):
                if rec.status != INTERRUPTED:
                    await self._publish_status(Target.parse(key), rec)

    async def _publish(self, topic: str, payload: bytes) -> None:
        try:
            await self.bridge.publish(topic, payload, 1, retain=True)
        except SprigError as e:
            log.warning("fleet: could not publish on %s: %s", topic, e)

    async def _publish_status(self, target: Target, rec: ExecutionRecord) -> None:
        msg = {"jobId": rec.job_id, "thingName": self.thing, "status": rec.status,
               "statusDetails": rec.details, "creationTimestamp": rec.creation_timestamp,
               "timestamp": now_ms()}
        await self._publish(self.topics.update(self.thing, target), json.dumps(msg).encode())

    # -- executions ----------------------------------------------------------------------

    async def _on_notify(self, message: Message) -> None:
        parsed = self.topics.parse_job_topic(message.topic)
        if parsed is None or parsed[0] != self.thing or not message.payload:
            return
        try:
            body = json.loads(message.payload)
            execution = body["execution"]
            if not isinstance(execution, dict):
                raise TypeError("execution is not an object")
        except (ValueError, KeyError, TypeError) as e:
            log.warning("fleet: ignored a malformed execution on %s: %s", message.topic, e)
            return
        self._pending[str(parsed[1])] = execution
        self._wake.set()

    def _allowed(self, target: Target) -> str | None:
        """Why this device does not take deployments for ``target`` (None: it does)."""
        if target.kind == THING_GROUP and target.name not in self.settings.thing_groups:
            return (f"this device is not in thing group {target.name} (config.yaml "
                    f"fleet.thingGroups: {', '.join(self.settings.thing_groups) or 'none'})")
        if target.kind == THING and target.name != self.thing:
            return f"this device is thing {self.thing}, not {target.name}"
        return None

    async def _worker(self) -> None:
        await self._resume()
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            key = next(iter(self._pending))
            execution = self._pending.pop(key)
            try:
                await self._take(Target.parse(key), execution)
            except Exception:
                log.exception("fleet: execution on %s failed unexpectedly", key)

    async def _resume(self) -> None:
        """A core killed during a fleet deployment: wait for its local deployment (the
        deployment service resumes it) and report the outcome; one killed before it queued
        the local deployment takes the execution up again when the broker delivers it."""
        for key, rec in list(self.state.executions.items()):
            if rec.status != ExecutionStatus.IN_PROGRESS:
                continue
            if rec.local_id is None:
                self.state.update(key, status=INTERRUPTED)
                continue
            self.busy = key
            try:
                await self._finish(Target.parse(key), rec)
            finally:
                self.busy = None

    async def _take(self, target: Target, execution: Mapping[str, Any]) -> None:
        key = str(target)
        job_id = str(execution.get("jobId", ""))
        status = execution.get("status")
        last = self.state.executions.get(key)
        if status in (ExecutionStatus.CANCELED, ExecutionStatus.TIMED_OUT):
            log.info("fleet: execution %s on %s is %s", job_id, key, status)
            return
        refusal = self._allowed(target)
        document = execution.get("jobDocument")
        try:
            dep = parse_document(document, f"execution {job_id} on {key}")
        except ValidationError as e:
            if refusal is None and job_id:
                # Not retained, not remembered: an unreadable document has no creationTimestamp
                # to hold the target's place.
                await self._final(target, ExecutionRecord(job_id, 0, ""),
                                  failed(str(e), "DEPLOYMENT_DOCUMENT_NOT_VALID"), retain=False)
            return
        if refusal is None and dep.target != target:
            refusal = (f"its configurationArn targets {dep.target}, but it came on the topic "
                       f"of {target}")
        if refusal is None and dep.deployment_id != job_id:
            refusal = f"its deploymentId {dep.deployment_id} is not the job id {job_id}"
        rec = ExecutionRecord(dep.deployment_id, dep.creation_timestamp, "",
                              configuration_arn=dep.configuration_arn,
                              components=dep.versions)
        if refusal is not None:
            log.warning("fleet: refused deployment %s: %s", dep.deployment_id, refusal)
            await self._final(target, rec, rejected(refusal), retain=False)
            return
        if last is not None and last.job_id == dep.deployment_id:
            if last.status == ExecutionStatus.IN_PROGRESS:
                return                                          # running now
            if last.status != INTERRUPTED:
                await self._publish_status(target, last)       # already done: say it again
                return
        elif last is not None and dep.creation_timestamp <= last.creation_timestamp:
            cause = (f"deployment {dep.deployment_id} (creationTimestamp "
                     f"{dep.creation_timestamp}) is not newer than {last.job_id} "
                     f"({last.creation_timestamp}), already received for {key}")
            log.warning("fleet: REJECTED: %s", cause)
            # Not retained: the slot keeps the newer deployment's status.
            await self._final(target, rec, rejected(cause, "REJECTED_STALE_DEPLOYMENT"),
                              retain=False)
            return
        self.busy = key
        try:
            await self._run(target, dep, rec)
        finally:
            self.busy = None
            shutil.rmtree(self.downloads / dep.deployment_id, ignore_errors=True)

    async def _run(self, target: Target, dep: FleetDeployment, rec: ExecutionRecord) -> None:
        key = str(target)
        rec = replace(rec, status=str(ExecutionStatus.IN_PROGRESS))
        # Saved with the local deployment's id below: a core killed before that takes the
        # execution up again when the broker delivers it (one write per step, not two).
        self.state.executions[key] = rec
        await self._publish_status(target, rec)
        log.info("fleet: deployment %s for %s: IN_PROGRESS (%s)", dep.deployment_id, key,
                 ", ".join(f"{n}={v}" for n, v in sorted(dep.versions.items())) or "nothing")
        missing = missing_capabilities(dep)
        if missing:
            await self._final(target, rec, failed(
                f"Sprig lacks the required capabilities {', '.join(missing)}",
                "NUCLEUS_MISSING_REQUIRED_CAPABILITIES"))
            return
        try:
            record_id = await self._submit(target, dep)
        except FleetFailure as e:
            await self._final(target, rec, failed(str(e), *e.codes))
            return
        except VersionConflict as e:
            await self._final(target, rec, failed(str(e), "NO_AVAILABLE_COMPONENT_VERSION",
                                                  "COMPONENT_VERSION_REQUIREMENTS_NOT_MET"))
            return
        except SprigError as e:
            outcome = classify_local_failure(f"rejected: {e}", dep.failure_handling)
            await self._final(target, rec, outcome)
            return
        rec = self.state.update(key, local_id=record_id)
        await self._finish(target, rec)

    async def _submit(self, target: Target, dep: FleetDeployment) -> str:
        """Fetch what is missing and queue the local deployment; its id."""
        from sprig.deployment.builtins import builtin_recipes
        from sprig.fleet.aws import NoCredentials, resolve_access
        from sprig.fleet.s3 import S3Client

        key = str(target)
        current = {n: r.version for n, r in self.kernel.db.components().items() if r.is_root}
        mapping = {k: v for k, v in self.state.targets.items()
                   if self._allowed(Target.parse(k)) is None}
        plan = plan_roots(mapping, key, dep.versions, current)
        local = dict(self.deployments.planner.stored_recipes())
        if self._builtins is None:
            self._builtins = builtin_recipes()
        for recipe in self._builtins:
            local.setdefault(recipe.id, recipe)
        try:
            access = resolve_access(self.settings.store, self.kernel.settings.region)
        except NoCredentials as e:
            raise FleetFailure(str(e), "DEVICE_CONFIG_NOT_VALID_FOR_ARTIFACT_DOWNLOAD") from None
        fetcher = ComponentFetcher(S3Client(access), self.settings.store,
                                   self.kernel.settings.deployment_limits,
                                   self.kernel.platform)
        fetched = await fetcher.gather(plan.versions, local)
        work = self.downloads / dep.deployment_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, mode=0o700)
        recipes, artifacts = work / "recipes", work / "artifacts"
        recipes.mkdir()
        artifacts.mkdir()
        downloaded = 0
        for _, recipe in sorted(fetched.chosen.items()):
            if recipe.id in fetched.recipes:
                write_recipe(recipe, recipes)
                downloaded += await fetcher.download(recipe, artifacts)
        log.info("fleet: deployment %s: %d store request(s), %d artifact byte(s) downloaded",
                 dep.deployment_id, fetcher.requests, downloaded)
        record = self.deployments.submit(dep.request(plan.versions, plan.remove),
                                         str(recipes), str(artifacts))
        return record.id

    async def _finish(self, target: Target, rec: ExecutionRecord) -> None:
        if rec.local_id is None:
            await self._final(target, rec, failed(
                "the core stopped before the deployment was queued", "DEPLOYMENT_INTERRUPTED"))
            return
        final = await self.deployments.wait_finished(rec.local_id, None)
        if final is None:
            await self._final(target, rec, failed(
                f"local deployment {rec.local_id} is gone from the history",
                "DEPLOYMENT_INTERRUPTED"))
            return
        policy = str(final.document.get("failureHandlingPolicy", "ROLLBACK"))
        outcome = succeeded() if final.status == "SUCCEEDED" else \
            classify_local_failure(final.reason, policy)
        keep = outcome.status == ExecutionStatus.SUCCEEDED or \
            outcome.detailed == DetailedStatus.FAILED_ROLLBACK_NOT_REQUESTED
        if keep:
            self.state.targets[str(target)] = TargetRoots(
                rec.job_id, rec.creation_timestamp, rec.configuration_arn, rec.components)
        await self._final(target, rec, outcome)

    async def _final(self, target: Target, rec: ExecutionRecord, outcome: Outcome, *,
                     retain: bool = True) -> None:
        rec = replace(rec, status=str(outcome.status), details=outcome.details())
        level = logging.INFO if outcome.status == ExecutionStatus.SUCCEEDED else logging.WARNING
        log.log(level, "fleet: deployment %s for %s: %s%s", rec.job_id, target, outcome.status,
                f" ({outcome.detailed}: {outcome.cause})" if outcome.cause else "")
        if not retain:
            msg = execution_update(self.thing, rec.job_id, outcome,
                                   creation_timestamp=rec.creation_timestamp)
            try:
                await self.bridge.publish(self.topics.update(self.thing, target),
                                          json.dumps(msg).encode(), 1)
            except SprigError as e:
                log.warning("fleet: could not publish a status: %s", e)
            return
        self.state.record(str(target), rec)
        await self._publish_status(target, rec)
        self.last_target = str(target)
        await self._settle()
        await self.publish_health(
            "THING_GROUP_DEPLOYMENT" if target.kind == THING_GROUP else "THING_DEPLOYMENT")

    # -- health --------------------------------------------------------------------------

    async def _settle(self) -> None:
        names = [n for n, c in self.kernel.components.items() if not c.record.user_stopped]
        services = self.kernel.services

        def settled() -> bool:
            return all(str(services[n].state) in ("RUNNING", "FINISHED", "BROKEN")
                       for n in names if n in services)

        await self.kernel.wait_until(settled, HEALTH_SETTLE_S)

    def _state_changed(self, name: str, old: State, new: State, reason: str) -> None:
        if str(new) in ("ERRORED", "BROKEN") or str(old) == "BROKEN":
            self._health_due.set()

    async def _health_loop(self) -> None:
        interval = self.settings.status_interval_s
        while True:
            try:
                await asyncio.wait_for(self._health_due.wait(), interval)
            except TimeoutError:
                await self.publish_health("CADENCE")
                continue
            await asyncio.sleep(HEALTH_DEBOUNCE_S)   # gather a burst of changes into one
            self._health_due.clear()
            if self.busy is None:     # a deployment in progress reports when it ends
                await self.publish_health("COMPONENT_STATUS_CHANGE")

    def fleet_arns(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for roots in self.state.targets.values():
            for name in roots.components:
                out.setdefault(name, []).append(roots.configuration_arn)
        return out

    async def publish_health(self, trigger: str) -> None:
        self._sequence += 1
        comps = [ComponentInfo(n, s.component.version, str(s.state),
                               s.component.record.is_root, s.last_error or "")
                 for n, s in sorted(self.kernel.services.items())]
        last = None
        if self.state.executions:
            key = self.last_target if self.last_target in self.state.executions else max(
                self.state.executions, key=lambda k: self.state.executions[k].creation_timestamp)
            last = (key, self.state.executions[key])
        payload = health_message(
            thing=self.thing, groups=self.settings.thing_groups, version=__version__,
            platform=self.kernel.platform, components=comps, fleet_arns=self.fleet_arns(),
            trigger=trigger, sequence=self._sequence, timestamp=now_ms(), last=last,
            max_bytes=self.bridge.settings.max_message_size - 256)
        await self._publish(self.topics.health(self.thing), payload)
