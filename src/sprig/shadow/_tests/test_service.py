"""The local shadow service on the real bus and a real ``state.db``: requests published on the
shadow topics are answered on ``…/accepted`` / ``…/rejected`` as AWS IoT answers them ("Device
Shadow MQTT topics": publish to ``…/update``, ``…/get``, ``…/delete``; the answer carries the
request's ``clientToken``), and Greengrass's ShadowManager serves them for local publishers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sprig.pubsub.bus import Bus
from sprig.shadow.service import ShadowService
from sprig.state.db import StateDB


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Bus, ShadowService]]:
    db = StateDB(tmp_path / "state.db")
    async with Bus() as bus:
        service = ShadowService(db, bus)
        service.start()
        yield bus, service
        service.close()
    db.close()


async def next_json(sub: Any) -> tuple[str, dict[str, Any]]:
    m = await asyncio.wait_for(sub.get(), 10)
    return m.topic, json.loads(m.payload)


async def test_requests_on_local_topics_are_answered(setup: tuple[Bus, ShadowService]) -> None:
    bus, service = setup
    answers = bus.subscribe("$aws/things/Lamp/shadow/name/cfg/+/+", owner="t")
    prefix = "$aws/things/Lamp/shadow/name/cfg"
    bus.publish(f"{prefix}/update", b'{"state":{"desired":{"on":true}},"clientToken":"u1"}',
                source="fn")
    seen = [await next_json(answers) for _ in range(3)]
    assert [t for t, _ in seen] == [f"{prefix}/update/delta", f"{prefix}/update/documents",
                                    f"{prefix}/update/accepted"]
    assert all(body["clientToken"] == "u1" for _, body in seen)
    bus.publish(f"{prefix}/get", b'{"clientToken":"g1"}', source="fn")
    topic, body = await next_json(answers)
    assert topic == f"{prefix}/get/accepted" and body["clientToken"] == "g1"
    assert body["state"]["delta"] == {"on": True}
    bus.publish(f"{prefix}/update", b'{"state":{"desired":{"on":false}},"version":7,'
                                    b'"clientToken":"u2"}', source="fn")
    topic, body = await next_json(answers)
    assert topic == f"{prefix}/update/rejected"
    assert body["code"] == 409 and body["message"] == "Version conflict"
    assert body["clientToken"] == "u2"
    bus.publish(f"{prefix}/delete", b"", source="fn")
    topic, body = await next_json(answers)
    assert topic == f"{prefix}/delete/accepted" and body["version"] == 1
    bus.publish(f"{prefix}/get", b"", source="fn")
    topic, body = await next_json(answers)
    assert topic == f"{prefix}/get/rejected" and body["code"] == 404
    assert body["message"] == "No shadow exists with name: cfg"
    assert service.document("Lamp", "cfg") is None


async def test_not_deployed_means_no_answer(tmp_path: Path) -> None:
    """Without aws.greengrass.ShadowManager deployed nobody serves the topics (as on
    Greengrass): a request changes nothing."""
    db = StateDB(tmp_path / "state.db")
    async with Bus() as bus:
        service = ShadowService(db, bus, deployed=lambda: False)
        service.start()
        bus.publish("$aws/things/X/shadow/update", b'{"state":{"reported":{"a":1}}}',
                    source="fn")
        await bus.drain()
        assert service.document("X") is None
        service.close()
    db.close()
