"""The shadow IPC operations with the real awsiotsdk client over the real socket, against the
real shadow service on a real ``state.db`` and the real local bus.

Sources: Greengrass developer guide "Interact with local shadows" (ipc-local-shadows):
service ``aws.greengrass.ShadowManager``, operations ``aws.greengrass#GetThingShadow``,
``UpdateThingShadow``, ``DeleteThingShadow``, ``ListNamedShadowsForThing``, resources
``$aws/things/<thing>/shadow`` and ``$aws/things/<thing>/shadow/name/<name>``; the ShadowManager
IPC handlers: 404 → ResourceNotFoundError (resourceType "shadow"), version mismatch →
ConflictError "Version conflict", bad input → InvalidArgumentsError, throttling → ServiceError
"Too Many Requests", DeleteThingShadow answers an empty payload; AWS IoT "Device Shadow MQTT
topics" for the accepted/delta/documents messages published on the local bus.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig.ipc._tests.conftest import DictCore, pubsub_policy
from sprig.ipc.server import IpcServer
from sprig.pubsub.bus import Bus
from sprig.shadow.config import parse_config
from sprig.shadow.service import ShadowService
from sprig.state.db import StateDB

ALL_OPS = ["aws.greengrass#GetThingShadow", "aws.greengrass#UpdateThingShadow",
           "aws.greengrass#DeleteThingShadow", "aws.greengrass#ListNamedShadowsForThing"]


def shadow_policy(component: str, resources: list[str], ops: list[str] | None = None
                  ) -> dict[str, Any]:
    return {"aws.greengrass.ShadowManager": {f"{component}:shadow:1": {
        "policyDescription": "test", "operations": ops or ALL_OPS, "resources": resources}}}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    d = StateDB(tmp_path / "state.db")
    yield d
    d.close()


@pytest.fixture
async def shadows(core: DictCore, bus: Bus, db: StateDB) -> AsyncIterator[ShadowService]:
    service = ShadowService(db, bus)
    service.start()
    core.shadow_service = service
    yield service
    service.close()


async def client(core: DictCore, server: IpcServer, drivers: Any, name: str,
                 access: dict[str, Any]) -> Any:
    core.add(name, f"tok-{name}", {"accessControl": access})
    d = await drivers(server.socket_path, f"tok-{name}")
    assert d.connected, d.hello
    return d


async def test_update_get_delete_roundtrip_and_local_topics(
        server: IpcServer, core: DictCore, shadows: ShadowService, bus: Bus,
        drivers: Any) -> None:
    """UpdateThingShadow answers update/accepted; the delta, documents and accepted messages go
    out on the local bus; GetThingShadow answers state + delta + metadata + version; delete
    answers an empty payload and the shadow is gone (404)."""
    seen = bus.subscribe("$aws/things/Robot/shadow/#", owner="test")
    me = await client(core, server, drivers, "com.me", {
        **shadow_policy("com.me", ["$aws/things/Robot/shadow"]),
        **pubsub_policy("com.me", ["aws.greengrass#SubscribeToTopic"], ["*"])})
    acc = await me("update_shadow", thing="Robot",
                   payload='{"state":{"desired":{"arm":"up"}},"clientToken":"c1"}')
    assert acc["version"] == 1 and acc["clientToken"] == "c1"
    assert acc["state"] == {"desired": {"arm": "up"}}
    topics = [(await seen.get()).topic for _ in range(3)]
    assert topics == ["$aws/things/Robot/shadow/update/delta",
                      "$aws/things/Robot/shadow/update/documents",
                      "$aws/things/Robot/shadow/update/accepted"]
    got = await me("get_shadow", thing="Robot")
    assert got["state"] == {"desired": {"arm": "up"}, "delta": {"arm": "up"}}
    assert got["version"] == 1 and "timestamp" in got["metadata"]["desired"]["arm"]
    assert (await seen.get()).topic == "$aws/things/Robot/shadow/get/accepted"
    await me("update_shadow", thing="Robot", payload='{"state":{"reported":{"arm":"up"}}}')
    got = await me("get_shadow", thing="Robot")
    assert "delta" not in got["state"] and got["version"] == 2
    assert await me("delete_shadow", thing="Robot") == ""
    e = await me.raw("get_shadow", thing="Robot")
    assert e["error"] == "ResourceNotFoundError" and e["resourceType"] == "shadow"
    # a new shadow of that name continues the deleted one's version (AWS: "will follow")
    again = await me("update_shadow", thing="Robot", payload='{"state":{"reported":{"a":1}}}')
    assert again["version"] == 3
    seen.close()
    await me.close()


async def test_named_shadows_listing_and_paging(server: IpcServer, core: DictCore,
                                                shadows: ShadowService, drivers: Any) -> None:
    """ListNamedShadowsForThing: names only (not the classic shadow), pageSize 1-100, a
    nextToken while more remain."""
    me = await client(core, server, drivers, "com.me",
                      shadow_policy("com.me", ["$aws/things/Dev/shadow*", "Dev"]))
    for n in ("a", "b", "c"):
        await me("update_shadow", thing="Dev", name=n, payload='{"state":{"reported":{"x":1}}}')
    await me("update_shadow", thing="Dev", payload='{"state":{"reported":{"x":1}}}')
    page = await me("list_shadows", thing="Dev", pageSize=2)
    assert page["results"] == ["a", "b"] and page["nextToken"]
    rest = await me("list_shadows", thing="Dev", pageSize=2, nextToken=page["nextToken"])
    assert rest["results"] == ["c"] and rest["nextToken"] is None and rest["timestamp"] > 0
    bad = await me.raw("list_shadows", thing="Dev", pageSize=101)
    assert bad["error"] == "InvalidArgumentsError" and "between 1 and 100" in bad["message"]
    bad = await me.raw("list_shadows", thing="Dev", nextToken="garbage")
    assert bad["error"] == "InvalidArgumentsError" and "nextToken" in bad["message"]
    await me.close()


async def test_errors_have_greengrass_shapes(server: IpcServer, core: DictCore,
                                             shadows: ShadowService, drivers: Any) -> None:
    """Version conflict → ConflictError; invalid names and documents → InvalidArgumentsError
    with AWS's words; too large → 413's message; no policy → UnauthorizedError; ShadowManager
    not deployed → ServiceError saying so."""
    me = await client(core, server, drivers, "com.me",
                      shadow_policy("com.me", ["$aws/things/Mine/shadow*"]))
    await me("update_shadow", thing="Mine", payload='{"state":{"reported":{"a":1}}}')
    e = await me.raw("update_shadow", thing="Mine", payload='{"state":{},"version":9}')
    assert (e["error"], e["message"]) == ("ConflictError", "Version conflict")
    e = await me.raw("update_shadow", thing="Mine", payload="{bad")
    assert e["error"] == "InvalidArgumentsError" and e["message"].startswith("Invalid JSON")
    e = await me.raw("update_shadow", thing="Mine", payload='{"state":{"desired":3}}')
    assert e["message"].startswith("Desired node must be an object")
    e = await me.raw("get_shadow", thing="bad/name")
    assert e["error"] == "InvalidArgumentsError" and "ThingName must match pattern" in e["message"]
    e = await me.raw("update_shadow", thing="Mine",
                     payload=json.dumps({"state": {"reported": {"x": "y" * 9000}}}))
    assert e["message"] == "The payload exceeds the maximum size allowed"
    e = await me.raw("get_shadow", thing="Other")
    assert e["error"] == "UnauthorizedError"
    assert "aws.greengrass.ShadowManager:aws.greengrass#GetThingShadow on resource " \
           "$aws/things/Other/shadow" in e["message"]
    core.shadow_service = None
    e = await me.raw("get_shadow", thing="Mine")
    assert e["error"] == "ServiceError" and "is not deployed" in e["message"]
    await me.close()


async def test_rate_limit_per_thing(server: IpcServer, core: DictCore, shadows: ShadowService,
                                    drivers: Any) -> None:
    """rateLimits.maxLocalRequestsPerSecondPerThing: over it, ServiceError "Too Many
    Requests" (the ShadowManager's throttling answer), other things unaffected."""
    shadows.configure(parse_config({"rateLimits": {"maxLocalRequestsPerSecondPerThing": 3}},
                                   core_thing=None))
    me = await client(core, server, drivers, "com.me", shadow_policy("com.me", ["*"]))
    await me("update_shadow", thing="Hot", payload='{"state":{"reported":{"a":1}}}')
    answers = [await me.raw("get_shadow", thing="Hot") for _ in range(5)]
    refused = [a for a in answers if "error" in a]
    assert refused and all(a["error"] == "ServiceError" and
                           a["message"].startswith("Too Many Requests") for a in refused)
    await me("update_shadow", thing="Cold", payload='{"state":{"reported":{"a":1}}}')
    await me.close()


async def test_two_writers_version_conflict(server: IpcServer, core: DictCore,
                                            shadows: ShadowService, drivers: Any) -> None:
    """Two components update with the version they read: exactly one wins, the other gets
    ConflictError and succeeds after re-reading (optimistic concurrency)."""
    a = await client(core, server, drivers, "com.a", shadow_policy("com.a", ["*"]))
    b = await client(core, server, drivers, "com.b", shadow_policy("com.b", ["*"]))
    await a("update_shadow", thing="Shared", payload='{"state":{"reported":{"n":0}}}')
    va = (await a("get_shadow", thing="Shared"))["version"]
    vb = (await b("get_shadow", thing="Shared"))["version"]
    ra = await a.raw("update_shadow", thing="Shared",
                     payload=json.dumps({"state": {"reported": {"n": 1}}, "version": va}))
    rb = await b.raw("update_shadow", thing="Shared",
                     payload=json.dumps({"state": {"reported": {"n": 2}}, "version": vb}))
    assert "ok" in ra and rb.get("error") == "ConflictError"
    vb = (await b("get_shadow", thing="Shared"))["version"]
    await b("update_shadow", thing="Shared",
            payload=json.dumps({"state": {"reported": {"n": 2}}, "version": vb}))
    assert (await a("get_shadow", thing="Shared"))["state"]["reported"] == {"n": 2}
    await a.close()
    await b.close()
