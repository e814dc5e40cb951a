"""The operator's side: ``sprig fleet deploy`` plays the IoT Jobs service for one target, with
all its state retained on the broker; ``sprig fleet cancel`` stops a rollout.

**One rollout per target, resumable.** The target's deployment record (retained) holds the
document, the rollout configuration and the rollout's status; which thing got the deployment
and how it went are the per-thing execution and status messages (retained). A controller
rebuilds everything from them when it starts, so a killed command re-run with the same
arguments resumes the rollout (same deployment id, same pace), and different arguments start a
new deployment that supersedes it (devices REJECT the older one by ``creationTimestamp``).
Re-run after the rollout COMPLETED, the command re-opens it for the devices that announced
themselves in the target since (Greengrass's thing-group deployments are continuous: a device
added to a group gets the group's deployment); devices take only executions addressed to them,
so someone must notify the newcomers, and with no Sprig server that is this command.

**Two operators.** Whoever runs a rollout holds the target's lease (retained; a heartbeat every
few seconds; released when the command ends, and by its connection's last will when it is
killed). A second operator is refused, naming the first. Should two claim at the same instant,
the later claim wins and the other stops at once, before it notifies anyone else; ``cancel``
takes the lease whoever holds it. The rollout's writes are idempotent (one deployment id per
thing slot), and devices refuse anything older than what they have, so no interleaving can
leave a device on a superseded deployment.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sprig.errors import SprigError, ValidationError
from sprig.fleet.broker import BrokerSession, BrokerUnavailable
from sprig.fleet.document import parse_document
from sprig.fleet.progress import Progress
from sprig.fleet.rollout import RolloutConfig, abort_reason_counts, next_notify_at, timed_out
from sprig.fleet.status import ExecutionStatus, execution_notice, now_ms
from sprig.fleet.topics import THING, FleetTopics, Target
from sprig.mqtt.settings import MqttSettings

#: Lease heartbeat period, and how old a heartbeat may be before the lease counts as lost (a
#: controller whose connection hangs without the broker noticing).
HEARTBEAT_S = 5.0
LEASE_TTL_S = 30.0
RECONNECT_MAX_S = 10.0
#: After ``cancel`` marked the executions, it keeps the lease this long, canceling any late
#: notification of a controller that had not yet seen the cancellation.
CANCEL_GRACE_S = 1.0

IN_PROGRESS, COMPLETED, ABORTED, CANCELED = "IN_PROGRESS", "COMPLETED", "ABORTED", "CANCELED"


class FleetCommandError(SprigError):
    pass


@dataclass
class DeployRequest:
    target: Target
    merge: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    config_updates: dict[str, dict[str, Any]] = field(default_factory=dict)  # CLI shape
    run_with: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure_handling: str = "ROLLBACK"
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    name: str | None = None
    wait: bool = False


def operator_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def build_components(previous: Mapping[str, Any] | None, req: DeployRequest) -> dict[str, Any]:
    """The target's new components: its previous deployment's, with this request's changes
    (as the Greengrass console revises a deployment)."""
    components: dict[str, Any] = json.loads(json.dumps(previous or {}))
    for name in req.remove:
        if name not in components:
            raise ValidationError(f"remove.{name}", "is not in the target's deployment",
                                  value=name, allowed=", ".join(sorted(components)) or "(none)")
        del components[name]
    for name, version in req.merge.items():
        spec = components.setdefault(name, {})
        spec.pop("componentVersion", None)
        spec["version"] = version
    for name, update in req.config_updates.items():
        if name not in components:
            raise ValidationError(f"configurationUpdate.{name}", "is not in the deployment",
                                  value=name, allowed=", ".join(sorted(components)))
        body: dict[str, Any] = {}
        if "MERGE" in update:
            body["merge"] = update["MERGE"]
        if "RESET" in update:
            body["reset"] = update["RESET"]
        components[name]["configurationUpdate"] = body
    for name, run_with in req.run_with.items():
        if name not in components:
            raise ValidationError(f"runWith.{name}", "is not in the deployment", value=name,
                                  allowed=", ".join(sorted(components)))
        components[name]["runWith"] = run_with
    return components


class Controller:
    """One command's broker session for one target."""

    def __init__(self, mqtt: MqttSettings, topics: FleetTopics, target: Target, *,
                 region: str = "us-east-1", out: Callable[[str], None] = print) -> None:
        self.mqtt = mqtt
        self.topics = topics
        self.target = target
        self.region = region
        self.out = out
        self.owner = uuid.uuid4().hex
        self.operator = operator_name()
        self.session = BrokerSession(mqtt, topics.prefix, will=(
            topics.lease(target), self._lease("RELEASED")))
        self.record: dict[str, Any] | None = None
        self.last_heartbeat = 0.0
        self.notified_count = 0
        self.progress: Progress | None = None
        self.session.listeners.append(self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.progress is not None:
            self.progress.feed(topic, payload)

    def _follow(self) -> Progress:
        """Start following the record's deployment: every retained message so far, then
        each one as it comes."""
        assert self.record is not None
        self.progress = Progress(self.topics, self.target, self.record["deploymentId"],
                                 int(self.record["document"]["creationTimestamp"]))
        for topic, payload in list(self.session.state.items()):
            self.progress.feed(topic, payload)
        return self.progress

    # -- lease ----------------------------------------------------------------------------

    def _lease(self, state: str, deployment_id: str | None = None) -> bytes:
        return json.dumps({"owner": self.owner, "operator": self.operator, "state": state,
                           "heartbeatAt": now_ms(), "deploymentId": deployment_id}).encode()

    def _lease_holder(self) -> dict[str, Any] | None:
        """The lease as the broker has it, when someone else holds it (live)."""
        lease = self.session.json(self.topics.lease(self.target))
        if not isinstance(lease, dict) or lease.get("state") != "HELD" \
                or lease.get("owner") == self.owner:
            return None
        age = (now_ms() - int(lease.get("heartbeatAt") or 0)) / 1000
        return lease if age < LEASE_TTL_S else None

    async def acquire(self, deployment_id: str | None, *, force: bool = False) -> None:
        holder = self._lease_holder()
        if holder is not None and not force:
            raise FleetCommandError(
                f"the rollout of {self.target} is being run by {holder.get('operator')} "
                f"(deployment {holder.get('deploymentId')}); wait until that command ends, or "
                f"stop it with `sprig fleet cancel --{_flag(self.target)} {self.target.name}`")
        await self.session.publish(self.topics.lease(self.target),
                                   self._lease("HELD", deployment_id))
        self.last_heartbeat = time.monotonic()
        await self.session.sync()
        lease = self.session.json(self.topics.lease(self.target)) or {}
        if lease.get("owner") != self.owner:
            raise FleetCommandError(f"{lease.get('operator')} took the rollout of "
                                    f"{self.target} at the same moment; it runs it")

    async def release(self, deployment_id: str | None) -> None:
        lease = self.session.json(self.topics.lease(self.target)) or {}
        if lease.get("owner") == self.owner:
            await self.session.publish(self.topics.lease(self.target),
                                       self._lease("RELEASED", deployment_id))

    def _still_mine(self) -> str | None:
        """Why this controller must stop (None: it still runs the rollout)."""
        lease = self.session.json(self.topics.lease(self.target)) or {}
        if lease.get("state") == "HELD" and lease.get("owner") != self.owner:
            return f"{lease.get('operator')} took over the rollout of {self.target}"
        rec = self.session.json(self.topics.deployment(self.target)) or {}
        assert self.record is not None
        if rec.get("deploymentId") != self.record["deploymentId"]:
            return (f"deployment {rec.get('deploymentId')} superseded "
                    f"{self.record['deploymentId']} on {self.target}")
        if rec.get("status") != IN_PROGRESS and rec.get("status") != self.record["status"]:
            return f"the rollout was {str(rec.get('status')).lower()}: {rec.get('reason', '')}"
        return None

    # -- deploy ---------------------------------------------------------------------------

    async def deploy(self, req: DeployRequest) -> int:
        async with self.session:
            await self.session.subscribe(
                self.topics.deployment(self.target), self.topics.lease(self.target),
                self.topics.all_presence(), self.topics.all_health(),
                self.topics.all_jobs(self.target))
            await self.session.sync()
            current = self.session.json(self.topics.deployment(self.target))
            record = self._new_record(current, req)
            resume = isinstance(current, dict) and current.get("deploymentId") == \
                record["deploymentId"]
            reopen = False
            if resume and current is not None and current.get("status") != IN_PROGRESS:
                self.record = current
                joined = self._follow().waiting
                if current["status"] != COMPLETED or not joined:
                    self.out(f"{self.target}: deployment {current['deploymentId']} is already "
                             f"{current['status']}" + (f" ({current.get('reason')})"
                                                       if current.get("reason") else ""))
                    return 0 if current["status"] == COMPLETED else 1
                # Members that announced themselves in the target since it COMPLETED (every
                # member then had been notified): they get it too, no one else is told again.
                reopen = True
            await self.acquire(record["deploymentId"])
            try:
                if reopen:
                    await self._set_status(IN_PROGRESS, "")
                    self.out(f"{self.target}: deployment {record['deploymentId']} again, for "
                             "the devices that joined since")
                elif resume:
                    self.record = current
                    self.out(f"{self.target}: resuming deployment {record['deploymentId']}")
                else:
                    self.record = record
                    await self.session.publish_json(self.topics.deployment(self.target), record)
                    self.out(f"{self.target}: deployment {record['deploymentId']} created "
                             f"(revision {record['revision']})")
                assert self.record is not None
                return await self._run(RolloutConfig.from_json(
                    self.record.get("iotJobConfiguration")), req.wait)
            finally:
                if self.session._client is not None and not self.session.lost.is_set():
                    await self.release(self.record["deploymentId"] if self.record else None)

    def _new_record(self, current: Any, req: DeployRequest) -> dict[str, Any]:
        prev = current if isinstance(current, dict) else None
        previous = ((prev or {}).get("document") or {}).get("components")
        components = build_components(previous, req)
        config = req.rollout.to_json()
        same = prev is not None and prev.get("document", {}).get("components") == components \
            and prev["document"].get("failureHandlingPolicy") == req.failure_handling \
            and (prev.get("iotJobConfiguration") or {}) == config
        if same and prev is not None and prev.get("status") in (IN_PROGRESS, COMPLETED):
            return prev
        revision = int((prev or {}).get("revision") or 0) + 1
        dep_id = str(uuid.uuid4())
        document: dict[str, Any] = {
            "deploymentId": dep_id,
            "configurationArn": self.target.configuration_arn(self.region, revision),
            "creationTimestamp": max(now_ms(), int(((prev or {}).get("document") or {}).get(
                "creationTimestamp") or 0) + 1),
            "components": components,
            "failureHandlingPolicy": req.failure_handling,
            "componentUpdatePolicy": {"timeout": 60, "action": "NOTIFY_COMPONENTS"},
        }
        if req.name:
            document["deploymentName"] = req.name
        parse_document(document, "the new deployment")          # refuse before publishing
        return {"target": str(self.target), "revision": revision, "deploymentId": dep_id,
                "document": document, "iotJobConfiguration": config, "status": IN_PROGRESS,
                "reason": "", "createdAt": now_ms(), "updatedAt": now_ms(),
                "operator": self.operator}

    async def _set_status(self, status: str, reason: str) -> None:
        assert self.record is not None
        self.record = {**self.record, "status": status, "reason": reason,
                       "updatedAt": now_ms()}
        await self.session.publish_json(self.topics.deployment(self.target), self.record)

    async def _notify(self, thing: str, status: ExecutionStatus, *,
                      queued_at: int | None = None) -> None:
        assert self.record is not None
        doc = self.record["document"] if status == ExecutionStatus.QUEUED else None
        notice = execution_notice(thing, self.record["deploymentId"], status, doc,
                                  queued_at=queued_at or now_ms())
        await self.session.publish_json(self.topics.notify(thing, self.target), notice)

    async def _reconnect(self) -> None:
        delay = 0.2
        while True:
            await self.session.close()
            try:
                await self.session.connect()
                await self.session.sync()
                break
            except (BrokerUnavailable, OSError, TimeoutError, SprigError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
        self.out(f"{self.target}: reconnected to the broker")
        holder = self._lease_holder()
        if holder is not None:
            raise FleetCommandError(f"{holder.get('operator')} took over the rollout of "
                                    f"{self.target} while the broker was away")
        assert self.record is not None
        await self.acquire(self.record["deploymentId"])
        rec = self.session.json(self.topics.deployment(self.target))
        if not isinstance(rec, dict) or rec.get("deploymentId") != self.record["deploymentId"]:
            await self.session.publish_json(self.topics.deployment(self.target), self.record)

    async def _run(self, config: RolloutConfig, wait: bool) -> int:
        assert self.record is not None
        progress = self._follow()
        reported: set[str] = set()
        last_notified = progress.last_queued_at / 1000 if progress.last_queued_at else None
        if config.abort and not config.rate_limited:
            self.out("warning: abortConfig without a rate: every device is notified at once, "
                     "so the abort can only stop what has not started (use --rate)")
        while True:
            seen = self.session.received        # anything arriving from here on: a new step
            if self.session.lost.is_set():
                self.out(f"{self.target}: lost the broker; reconnecting")
                await self._reconnect()
            why = self._still_mine()
            if why is not None:
                self.out(f"{self.target}: stopping: {why}")
                return 1
            self._report(progress, reported)
            reason = abort_reason_counts(config, progress.counts)
            if reason is not None:
                return await self._abort(reason, progress)
            for late in timed_out(config, progress.running, time.time()):
                await self._notify(late, ExecutionStatus.TIMED_OUT,
                                   queued_at=progress.devices[late].queued_at)
                self.out(f"  {late}: TIMED_OUT (IN_PROGRESS over "
                         f"{config.timeout_minutes:g} min)")
            now = time.time()
            due: list[str] = []
            while (thing := progress.next_waiting()) is not None:
                at = next_notify_at(config, last_notified, progress.notified,
                                    progress.counts["SUCCEEDED"])
                if at > now:
                    break
                # Counted at once (the echo of the notice comes back later).
                progress.feed(self.topics.notify(thing, self.target), json.dumps(
                    execution_notice(thing, self.record["deploymentId"],
                                     ExecutionStatus.QUEUED, None,
                                     queued_at=int(now * 1000))).encode())
                due.append(thing)
                # Keep the pace of the schedule when only a little late (no drift), but never
                # catch up with a burst after a pause (a resumed command, a broker outage).
                last_notified = at if now - at < 1.0 else now
            # Sent together: one round trip to the broker for all, not one each.
            await asyncio.gather(*(self._notify(t, ExecutionStatus.QUEUED) for t in due))
            self.notified_count += len(due)
            members = len(progress.members)
            pending = progress.pending()
            if not progress.waiting and (not wait or not pending):
                if not pending and members:
                    succeeded = progress.counts["SUCCEEDED"]
                    failures = progress.finished - succeeded
                    offline = progress.offline_unfinished()
                    await self._set_status(COMPLETED, f"{succeeded} succeeded, {failures} "
                                           f"failed, {offline} offline (they converge when "
                                           "they return)")
                    self.out(f"{self.target}: COMPLETED: {self.record['reason']}")
                    return 1 if failures else 0
                if members:
                    self.out(f"{self.target}: every device notified ({progress.notified}); "
                             "follow with `sprig fleet status`, or run this again with --wait")
                    return 0
            if not members:
                self.out(f"{self.target}: no device has announced itself in this target yet; "
                         "devices that join later get the deployment when this is run again")
                return 0
            timeout = HEARTBEAT_S
            if progress.waiting:
                at = next_notify_at(config, last_notified, progress.notified,
                                    progress.counts["SUCCEEDED"])
                timeout = min(timeout, max(0.0, at - time.time()))
            if config.timeout_minutes is not None and progress.running:
                first = min(progress.running.values()) + config.timeout_minutes * 60
                timeout = min(timeout, max(0.05, first - time.time() + 0.01))
            await self._next_message(seen, timeout)
            if time.monotonic() - self.last_heartbeat >= HEARTBEAT_S:
                await self.session.publish(self.topics.lease(self.target),
                                           self._lease("HELD", self.record["deploymentId"]))
                self.last_heartbeat = time.monotonic()

    def _report(self, progress: Progress, reported: set[str]) -> None:
        for thing in progress.newly_finished:
            d = progress.devices[thing]
            key = f"{thing}:{d.result}"
            if d.result is None or key in reported:
                continue
            reported.add(key)
            cause = (d.update.get("statusDetails") or {}).get("deployment-failure-cause")
            self.out(f"  {thing}: {d.result}" + (f" ({cause})" if cause and
                                                 d.result != "SUCCEEDED" else ""))
        progress.newly_finished.clear()

    async def _next_message(self, seen: int, timeout: float) -> bool:
        """Wait for a message after the ``seen``-th (at once if one came meanwhile)."""
        return await self.session.wait_for(lambda: self.session.received != seen, timeout)

    async def _abort(self, reason: str, progress: Progress) -> int:
        await self._set_status(ABORTED, reason)
        canceled = await self._cancel_queued(progress)
        self.out(f"{self.target}: ABORTED: {reason}; {canceled} queued execution(s) canceled, "
                 f"{progress.waiting} device(s) never notified")
        return 1

    async def _cancel_queued(self, progress: Progress) -> int:
        things = progress.queued()
        for thing in things:
            await self._notify(thing, ExecutionStatus.CANCELED,
                               queued_at=progress.devices[thing].queued_at)
        return len(things)

    # -- cancel ---------------------------------------------------------------------------

    async def cancel(self) -> int:
        async with self.session:
            await self.session.subscribe(
                self.topics.deployment(self.target), self.topics.lease(self.target),
                self.topics.all_presence(), self.topics.all_health(),
                self.topics.all_jobs(self.target))
            await self.session.sync()
            current = self.session.json(self.topics.deployment(self.target))
            if not isinstance(current, dict) or current.get("status") != IN_PROGRESS:
                status = current.get("status") if isinstance(current, dict) else None
                self.out(f"{self.target}: no rollout in progress"
                         + (f" (the last one is {status})" if status else ""))
                return 0
            self.record = current
            progress = self._follow()
            await self.acquire(current["deploymentId"], force=True)
            await self._set_status(CANCELED, f"canceled by {self.operator}")
            canceled = await self._cancel_queued(progress)
            await self.session.wait_for(lambda: False, CANCEL_GRACE_S)
            canceled += await self._cancel_queued(progress)
            untouched = progress.waiting
            await self.release(current["deploymentId"])
            self.out(f"{self.target}: deployment {current['deploymentId']} CANCELED; "
                     f"{canceled} queued execution(s) canceled, {untouched} device(s) never "
                     "notified; executions already IN_PROGRESS finish on their devices")
            return 0


def _flag(target: Target) -> str:
    return "group" if target.kind != THING else "thing"
