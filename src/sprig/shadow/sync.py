"""Synchronizing local shadows with the broker's (AWS IoT's) over the Device Shadow MQTT topics.

Only the shadows the ShadowManager configuration lists under ``synchronize`` take part. For each,
the cloud side is spoken to as AWS IoT documents it ("Device Shadow MQTT topics"): publish
``…/get``, ``…/update`` or ``…/delete`` with a ``clientToken`` and wait for ``…/accepted`` or
``…/rejected`` carrying it; ``…/update/documents`` and ``…/delete/accepted`` from anyone else
tell of a cloud change.

**Reconciling one shadow** compares both sides with what they were at the last sync (kept in
``state.db``'s ``shadow_sync``: the agreed state and the local and cloud versions then):

* nothing changed on either side: nothing to do;
* one side changed: its state is copied to the other, if ``direction`` allows that way
  (``betweenDeviceAndCloud``, ``deviceToCloud``, ``cloudToDevice``); a deletion is copied as a
  deletion;
* both changed (offline edits on each): ``betweenDeviceAndCloud`` merges key by key from the
  last agreed state, the device's value winning where both changed the same key (Greengrass's
  shadow manager also favours the local shadow); the one-way directions copy their source side.

Cloud updates carry the cloud ``version`` the merge was based on: if the cloud changed again
meanwhile, AWS rejects it (409) and the shadow is reconciled again.

**When**: every shadow at each (re)connection and after each configuration change; then, with
``strategy`` ``realTime``, a shadow whenever it changes on either side, and with ``periodic``,
every shadow every ``delay`` seconds. Cloud updates are paced by
``rateLimits.maxOutboundSyncUpdatesPerSecond``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Final

from sprig.errors import SprigError
from sprig.mqtt.bridge import BridgeSubscription, MqttBridge
from sprig.pubsub.bus import Message
from sprig.shadow.config import Direction, ShadowId, ShadowManagerConfig, Strategy
from sprig.shadow.document import (
    SECTIONS,
    ShadowDocument,
    ShadowError,
    UpdateRequest,
    parse_topic,
    topic_prefix,
)
from sprig.shadow.service import CLOUD, ShadowService
from sprig.state.db import ShadowSyncRecord, StateDB

log = logging.getLogger("sprig.shadow.sync")

RESPONSE_TIMEOUT: Final = 10.0
RETRY_SECONDS: Final = 5.0
OWNER: Final = "aws.greengrass.ShadowManager sync"
ABSENT: Final = -1          # the version recorded for "no shadow on that side"


class CloudError(SprigError):
    """The broker's shadow service refused a request, or did not answer in time."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


def patch_between(old: Any, new: Any) -> Any:
    """The update patch that turns section ``old`` into ``new`` (removed keys set to null)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    out: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        if key in old and old[key] == value:
            continue
        out[key] = patch_between(old.get(key), value) if isinstance(old.get(key), dict) \
            and isinstance(value, dict) else value
    return out


def state_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """An update's ``state`` turning document state ``old`` into ``new``, both sections."""
    out: dict[str, Any] = {}
    for section in SECTIONS:
        before, after = old.get(section) or {}, new.get(section) or {}
        if before == after:
            continue
        out[section] = patch_between(before, after) if after else None
    return out


_MISSING: Final = object()


def merge3(base: Any, local: Any, cloud: Any) -> Any:
    """Three-way merge of two states edited from ``base``: a key changed on one side only
    takes that side's value; changed on both, the local (device) value wins."""
    if not all(isinstance(x, dict) for x in (local, cloud)):
        return cloud if local == base else local
    base_d = base if isinstance(base, dict) else {}
    out: dict[str, Any] = {}
    for key in {*local, *cloud, *base_d}:
        b, lv, cv = (d.get(key, _MISSING) for d in (base_d, local, cloud))
        if lv == b:
            value = cv
        elif cv == b or lv == cv:
            value = lv
        elif isinstance(lv, dict) and isinstance(cv, dict):
            value = merge3(b, lv, cv)
        else:
            value = lv
        if value is not _MISSING:
            out[key] = value
    return out


class ShadowSync:
    """Keeps the configured shadows in step with the broker; see the module docstring."""

    def __init__(self, service: ShadowService, bridge: MqttBridge, db: StateDB, *,
                 timeout: float = RESPONSE_TIMEOUT) -> None:
        self.service = service
        self.bridge = bridge
        self.db = db
        self.timeout = timeout
        self.config = ShadowManagerConfig()
        self._pending: dict[str, asyncio.Future[tuple[str, dict[str, Any]]]] = {}
        self._subs: dict[str, BridgeSubscription] = {}
        self._queue: asyncio.Queue[ShadowId] = asyncio.Queue()
        self._queued: set[ShadowId] = set()
        self._task: asyncio.Task[None] | None = None
        self._reconfigured = asyncio.Event()
        self._last_send = 0.0
        self.reconciled = 0
        self.pushed = 0
        self.pulled = 0
        self.failures = 0
        service.listeners.append(self._local_change)

    # --- lifecycle -------------------------------------------------------------------------

    def configure(self, config: ShadowManagerConfig) -> None:
        self.config = config
        wanted = {s.thing for s in config.synchronized}
        for thing in set(self._subs) - wanted:
            self._subs.pop(thing).close()
        for thing in wanted - set(self._subs):
            self._subs[thing] = self.bridge.subscribe(f"$aws/things/{thing}/shadow/#",
                                                      self._on_cloud, owner=OWNER)
        self._reconfigured.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="shadow-sync")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sub in self._subs.values():
            sub.close()
        self._subs.clear()

    # --- triggers --------------------------------------------------------------------------

    def _enqueue(self, shadow: ShadowId) -> None:
        if not self.service.deployed():
            return                  # ShadowManager removed: nothing is synchronized any more
        if shadow in self.config.synchronized and shadow not in self._queued:
            self._queued.add(shadow)
            self._queue.put_nowait(shadow)

    def _local_change(self, shadow: ShadowId, doc: ShadowDocument | None,
                      patch: dict[str, Any] | None, origin: str) -> None:
        if origin != CLOUD and self.config.strategy is Strategy.REAL_TIME \
                and self.config.direction.to_cloud:
            self._enqueue(shadow)

    async def _on_cloud(self, message: Message) -> None:
        topic = parse_topic(message.topic)
        if topic is None or topic.suffix is None:
            return
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        token = body.get("clientToken") if isinstance(body, dict) else None
        future = self._pending.get(token) if isinstance(token, str) else None
        if future is not None and topic.suffix in ("accepted", "rejected"):
            if not future.done():
                future.set_result((topic.suffix, body))
            return
        changed = (topic.operation, topic.suffix) in (("update", "documents"),
                                                       ("delete", "accepted"))
        if changed and self.config.strategy is Strategy.REAL_TIME \
                and self.config.direction.to_device:
            self._enqueue(ShadowId(topic.thing, topic.name))

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._ready():
                with contextlib.suppress(TimeoutError):
                    await self.bridge.wait_until(self._ready, 3600.0)
            # Each (re)connection, and each new configuration, reconciles every shadow.
            epoch = self.bridge.connections
            self._reconfigured.clear()
            for shadow in sorted(self.config.synchronized):
                self._enqueue(shadow)
            periodic = self.config.strategy is Strategy.PERIODIC
            deadline = loop.time() + self.config.delay_seconds
            while self._online(epoch) and not self._reconfigured.is_set():
                timeout = deadline - loop.time() if periodic else 1.0
                try:
                    shadow = await asyncio.wait_for(self._queue.get(), max(timeout, 0.0))
                except TimeoutError:
                    if periodic and loop.time() >= deadline:
                        deadline += self.config.delay_seconds
                        for s in sorted(self.config.synchronized):
                            self._enqueue(s)
                    continue
                self._queued.discard(shadow)
                if not self._online(epoch):
                    break           # reconciled again at the reconnection
                await self._reconcile_logged(shadow)

    def _online(self, epoch: int) -> bool:
        """Still on the connection ``epoch`` (a reconnection in between reconciles all)."""
        return self.bridge.connected and self.bridge.connections == epoch

    def _ready(self) -> bool:
        """Connected, with the broker subscribed to every synchronized thing's topics."""
        if not self.bridge.connected:
            return False
        return all(f"$aws/things/{t}/shadow/#" in self.bridge.broker_filters for t in self._subs)

    async def _reconcile_logged(self, shadow: ShadowId) -> None:
        try:
            await self.reconcile(shadow)
            self.reconciled += 1
        except (CloudError, ShadowError) as e:
            self.failures += 1
            log.warning("shadow sync of %s: %s; retried in %.0f s, at the next change or at "
                        "the next connection", shadow, e, RETRY_SECONDS)
            if isinstance(e, CloudError) and e.code == 409 and self.bridge.connected:
                self._enqueue(shadow)           # the cloud moved on: merge again at once
            elif self.bridge.connected:
                asyncio.get_running_loop().call_later(RETRY_SECONDS, self._enqueue, shadow)

    # --- one shadow ------------------------------------------------------------------------

    async def reconcile(self, shadow: ShadowId) -> None:
        """Bring ``shadow`` in step on both sides (see the module docstring)."""
        record = self.db.shadow_sync(shadow.thing, shadow.name)
        local = self.service.document(shadow.thing, shadow.name)
        cloud = await self._cloud_get(shadow)
        local_v = local.version if local is not None else ABSENT
        cloud_v = int(cloud["version"]) if cloud is not None else ABSENT
        if record is not None and record.local_version == local_v \
                and record.cloud_version == cloud_v:
            return
        base = (record.last_synced if record is not None else None) or {}
        local_state = local.state if local is not None else None
        cloud_state = _sections(cloud["state"]) if cloud is not None else None
        local_changed = record is None or record.local_version != local_v
        cloud_changed = record is None or record.cloud_version != cloud_v
        direction = self.config.direction
        target: dict[str, Any] | None
        if local_changed and cloud_changed:
            if direction is Direction.DEVICE_TO_CLOUD:
                target = local_state
            elif direction is Direction.CLOUD_TO_DEVICE:
                target = cloud_state
            elif local_state is None or cloud_state is None:
                # Never synced: whichever side has a shadow gives it. Deleted on one side
                # and changed on the other: the device's side wins.
                target = (cloud_state if local_state is None else local_state) \
                    if record is None else local_state
            else:
                target = merge3(base, local_state, cloud_state)
        elif local_changed:
            target = local_state if direction.to_cloud else None
        else:
            target = cloud_state if direction.to_device else None
        one_way = (local_changed and not cloud_changed and not direction.to_cloud) or \
            (cloud_changed and not local_changed and not direction.to_device)
        agreed: dict[str, Any] | None = base or None
        if not one_way:
            if direction.to_device:
                local_v = self._apply_local(shadow, local, target)
            if direction.to_cloud:
                cloud_v = await self._apply_cloud(shadow, cloud, target)
            agreed = target
        self.db.put_shadow_sync(ShadowSyncRecord(shadow.thing, shadow.name, agreed, local_v,
                                                 cloud_v))

    def _apply_local(self, shadow: ShadowId, local: ShadowDocument | None,
                     target: dict[str, Any] | None) -> int:
        """Make the local shadow ``target`` (None: deleted); its version afterwards."""
        if target is None:
            if local is not None:
                self.service.delete(shadow.thing, shadow.name, origin=CLOUD, rate_limited=False)
                self.pulled += 1
            return ABSENT
        current = local.state if local is not None else {}
        if local is not None and current == target:
            return local.version
        patch = state_patch(current, target)
        accepted = self.service.apply(shadow, UpdateRequest(patch, None, None), CLOUD)
        self.pulled += 1
        return int(accepted["version"])

    async def _apply_cloud(self, shadow: ShadowId, cloud: dict[str, Any] | None,
                           target: dict[str, Any] | None) -> int:
        """Make the cloud shadow ``target``; its version afterwards."""
        if target is None:
            if cloud is None:
                return ABSENT
            await self._request(shadow, "delete", {})
            self.pushed += 1
            return ABSENT
        current = _sections(cloud["state"]) if cloud is not None else {}
        if cloud is not None and current == target:
            return int(cloud["version"])
        body: dict[str, Any] = {"state": state_patch(current, target)}
        if cloud is not None:
            body["version"] = int(cloud["version"])
        answer = await self._request(shadow, "update", body)
        self.pushed += 1
        return int(answer["version"])

    # --- the cloud side --------------------------------------------------------------------

    async def _cloud_get(self, shadow: ShadowId) -> dict[str, Any] | None:
        try:
            return await self._request(shadow, "get", {})
        except CloudError as e:
            if e.code == 404:
                return None
            raise

    async def _request(self, shadow: ShadowId, op: str, body: dict[str, Any]
                       ) -> dict[str, Any]:
        if op == "update":
            await self._pace()
        token = uuid.uuid4().hex
        future: asyncio.Future[tuple[str, dict[str, Any]]] = \
            asyncio.get_running_loop().create_future()
        self._pending[token] = future
        topic = f"{topic_prefix(shadow.thing, shadow.name)}/{op}"
        try:
            await self.bridge.publish(topic, json.dumps({**body, "clientToken": token}).encode(),
                                      1)
            outcome, answer = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise CloudError(f"no answer to {op} on {topic} within {self.timeout:.0f} s") \
                from None
        except SprigError as e:
            raise CloudError(f"{op} on {topic} not sent: {e}") from None
        finally:
            self._pending.pop(token, None)
        if outcome == "rejected":
            code = answer.get("code")
            raise CloudError(f"the broker's shadow service rejected {op} of {shadow}: "
                             f"{code} {answer.get('message')}",
                             code if isinstance(code, int) else None)
        return answer

    async def _pace(self) -> None:
        """At most ``maxOutboundSyncUpdatesPerSecond`` cloud updates per second."""
        loop = asyncio.get_running_loop()
        gap = 1.0 / self.config.max_outbound_per_second
        wait = self._last_send + gap - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_send = loop.time()


def _sections(state: Any) -> dict[str, Any]:
    """A cloud document's state without its computed ``delta``."""
    if not isinstance(state, dict):
        return {}
    return {s: state[s] for s in SECTIONS if isinstance(state.get(s), dict) and state[s]}
