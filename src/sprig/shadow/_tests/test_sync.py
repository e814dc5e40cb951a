"""Shadow sync with a broker: the real MqttBridge and ShadowSync on a real Mosquitto, against a
test shadow service written from AWS's MQTT shadow API (``cloud_shadow.py``).

Sources: Greengrass "Sync local device shadows with AWS IoT Core" and the ShadowManager
component's configuration (``synchronize.coreThing`` / ``shadowDocuments``, ``direction``
betweenDeviceAndCloud / deviceToCloud / cloudToDevice, ``strategy`` realTime / periodic):
"shadow manager ... syncs ... when the core device reconnects"; AWS IoT "Device Shadow MQTT
topics" for the request/response topics and clientToken correlation.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sprig.mqtt.bridge import MqttBridge
from sprig.mqtt.mosquitto import Mosquitto
from sprig.mqtt.settings import MqttSettings
from sprig.pubsub.bus import Bus
from sprig.shadow._tests.cloud_shadow import CloudShadows
from sprig.shadow.config import parse_config
from sprig.shadow.service import ShadowService
from sprig.shadow.sync import ShadowSync, merge3, state_patch
from sprig.state.db import StateDB

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None,
                                reason="the mosquitto broker is not installed")


@dataclass
class Rig:
    broker: Mosquitto
    cloud: CloudShadows
    bus: Bus
    db: StateDB
    service: ShadowService
    bridge: MqttBridge
    sync: ShadowSync

    def configure(self, cfg: dict[str, Any]) -> None:
        config = parse_config(cfg, core_thing="Core")
        self.service.configure(config)
        self.sync.configure(config)

    async def until_synced(self, n: int, timeout: float = 15.0) -> None:
        """Wait until ``n`` reconciliations have finished (no sleeping)."""
        async def poll() -> None:
            while self.sync.reconciled + self.sync.failures < n:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with Mosquitto(tmp_path / "broker") as broker, Bus() as bus, \
            CloudShadows(broker.port) as cloud:
        db = StateDB(tmp_path / "state.db")
        bridge = MqttBridge(MqttSettings(host="127.0.0.1", port=broker.port,
                                         client_id="sprig-core", reconnect_min_seconds=0.05,
                                         reconnect_max_seconds=0.2,
                                         operation_timeout_seconds=3))
        service = ShadowService(db, bus)
        service.start()
        sync = ShadowSync(service, bridge, db, timeout=5.0)
        await bridge.start()
        sync.start()
        try:
            yield Rig(broker, cloud, bus, db, service, bridge, sync)
        finally:
            await sync.aclose()
            await bridge.aclose()
            service.close()
            db.close()


async def test_real_time_both_ways(rig: Rig) -> None:
    """realTime, betweenDeviceAndCloud: a local update reaches the cloud shadow; a cloud app's
    update (its update/documents message) reaches the local shadow."""
    rig.configure({"synchronize": {"coreThing": {"classic": True, "namedShadows": ["cfg"]}}})
    rig.service.update("Core", "", b'{"state":{"reported":{"temp":21}}}')
    await rig.cloud.wait_for(lambda: rig.cloud.docs.get(("Core", "")) ==
                             {"reported": {"temp": 21}})
    seen = rig.bus.subscribe("$aws/things/Core/shadow/name/cfg/update/accepted", owner="t")
    await rig.cloud.app_update("Core", "cfg", {"desired": {"mode": "eco"}})
    await asyncio.wait_for(seen.get(), 15)
    doc = rig.service.document("Core", "cfg")
    assert doc is not None and doc.state == {"desired": {"mode": "eco"}}
    # a shadow that is not configured is never sent
    rig.service.update("Other", "", b'{"state":{"reported":{"x":1}}}')
    rig.service.update("Core", "", b'{"state":{"reported":{"temp":22}}}')
    await rig.cloud.wait_for(lambda: rig.cloud.docs.get(("Core", "")) ==
                             {"reported": {"temp": 22}})
    assert ("Other", "") not in rig.cloud.docs


async def test_offline_changes_reconcile_on_reconnect(rig: Rig) -> None:
    """Both sides change while the broker is down: on reconnect the shadow manager merges them
    (keys changed on one side take that side's value; the device wins a key both changed), and
    both sides end with the same state."""
    rig.configure({"synchronize": {"shadowDocuments": [{"thingName": "Pump"}]}})
    rig.service.update("Pump", "", b'{"state":{"reported":{"a":1,"b":1,"c":1}}}')
    await rig.cloud.wait_for(lambda: rig.cloud.docs.get(("Pump", "")) is not None)
    await rig.until_synced(1)
    await rig.broker.stop()
    await rig.bridge.wait_until(lambda: not rig.bridge.connected, 10)
    rig.service.update("Pump", "", b'{"state":{"reported":{"a":2,"c":2}}}')
    rig.cloud.set_offline("Pump", "", {"reported": {"b": 3, "c": 3}})
    connections = rig.cloud.connections
    await rig.broker.restart()
    await rig.cloud.wait_for(lambda: rig.cloud.connections > connections)
    want = {"reported": {"a": 2, "b": 3, "c": 2}}
    await rig.cloud.wait_for(lambda: rig.cloud.docs.get(("Pump", "")) == want)
    doc = rig.service.document("Pump", "")
    assert doc is not None and doc.state == want


async def test_device_to_cloud_ignores_cloud_changes(rig: Rig) -> None:
    """direction deviceToCloud: local changes go up, cloud changes never come down."""
    rig.configure({"synchronize": {"direction": "deviceToCloud",
                                   "shadowDocumentsMap": {"Fan": {"classic": True}}}})
    rig.service.update("Fan", "", b'{"state":{"reported":{"rpm":100}}}')
    await rig.cloud.wait_for(lambda: rig.cloud.docs.get(("Fan", "")) ==
                             {"reported": {"rpm": 100}})
    await rig.cloud.app_update("Fan", "", {"desired": {"rpm": 5}})
    rig.service.update("Fan", "", b'{"state":{"reported":{"rpm":200}}}')
    await rig.cloud.wait_for(lambda: rig.cloud.docs.get(("Fan", ""), {}).get("reported") ==
                             {"rpm": 200})
    doc = rig.service.document("Fan", "")
    assert doc is not None and "desired" not in doc.state


async def test_periodic_strategy_syncs_on_its_timer(rig: Rig) -> None:
    """strategy periodic: nothing is sent on a change; every ``delay`` seconds all shadows are
    reconciled."""
    rig.configure({"strategy": {"type": "periodic", "delay": 1},
                   "synchronize": {"shadowDocuments": [{"thingName": "Slow"}]}})
    await rig.until_synced(1)
    done = rig.sync.reconciled
    rig.service.update("Slow", "", b'{"state":{"reported":{"v":1}}}')
    assert rig.sync._queue.empty()
    await rig.until_synced(done + 1)
    await rig.cloud.wait_for(lambda: rig.cloud.docs.get(("Slow", "")) == {"reported": {"v": 1}})


def test_merge_helpers() -> None:
    """The patch between two states deletes removed keys with null; the three-way merge keeps
    each side's own changes and the device's on a conflict."""
    assert state_patch({"reported": {"a": 1, "b": 2}}, {"reported": {"a": 1, "c": 3}}) == \
        {"reported": {"b": None, "c": 3}}
    assert state_patch({"desired": {"a": 1}}, {}) == {"desired": None}
    base = {"reported": {"a": 1, "b": 1, "c": 1, "d": 1}}
    local = {"reported": {"a": 2, "b": 1, "c": 2}}
    cloud = {"reported": {"a": 1, "b": 3, "c": 3, "d": 1}}
    assert merge3(base, local, cloud) == {"reported": {"a": 2, "b": 3, "c": 2}}
