"""PublishToTopic / SubscribeToTopic with the real awsiotsdk client against the real Bus."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from sprig.ipc._tests.conftest import DictCore, Driver, IpcError, pubsub_policy
from sprig.ipc.server import IpcServer

ALL = "RECEIVE_ALL_MESSAGES"
OTHERS = "RECEIVE_MESSAGES_FROM_OTHERS"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_publish_subscribe_json_binary_receive_modes_and_cleanup(
        server: IpcServer, core: DictCore, drivers: Any) -> None:
    for name, token in (("com.a", "tok-a"), ("com.b", "tok-b")):
        core.add(name, token, {"accessControl": pubsub_policy(name, ["*"], ["*"])})
    a, b = await asyncio.gather(drivers(server.socket_path, "tok-a"),
                                drivers(server.socket_path, "tok-b"))
    assert a.connected and b.connected, (a.hello, b.hello)
    await server.wait_until(lambda: server.components() == ["com.a", "com.b"], 5)

    a_all = await a("subscribe", topic="t/#", mode=ALL)
    a_others = await a("subscribe", topic="t/1", mode=OTHERS)
    b_sub = await b("subscribe", topic="t/+")
    assert len(core.bus.subscriptions("com.a")) == 2

    await a("publish_json", topic="t/1", message={"from": "a", "n": [1, 2]})
    await b("publish_binary", topic="t/1", b64=b64(b"\x00\xffbin"))
    core.bus.publish("t/2", b'{"core": true}', source="core", json=True)
    await b("publish_json", topic="t/1", message={"from": "b", "sentinel": True})

    expected = [{"json": {"from": "a", "n": [1, 2]}, "topic": "t/1"},
                {"binary": b64(b"\x00\xffbin"), "topic": "t/1"},
                {"json": {"core": True}, "topic": "t/2"},
                {"json": {"from": "b", "sentinel": True}, "topic": "t/1"}]
    assert await a.events(a_all, 4) == expected
    assert await b.events(b_sub, 4) == expected
    # From others only: a's own message never arrives (b's sentinel was published after it).
    assert await a.events(a_others, 2) == [expected[1], expected[3]]

    # The client closing one subscription unsubscribes it on the bus. Requests on one
    # connection are handled in order, so the publish's answer means the close was handled.
    await a("close_sub", sub=a_others)
    await a("publish_json", topic="t/9", message=1)
    assert [s.filter.value for s in core.bus.subscriptions("com.a")] == ["t/#"]
    assert (await a.events(a_all, 5))[4] == {"json": 1, "topic": "t/9"}

    # A disconnect cleans up every subscription of that connection.
    await a.close()
    await server.wait_until(lambda: server.components() == ["com.b"], 5)
    assert core.bus.subscriptions("com.a") == []
    assert len(core.bus.subscriptions("com.b")) == 1
    b.kill()                                      # even without a goodbye
    await server.wait_until(lambda: server.connections == 0, 5)
    assert core.bus.subscriptions() == []
    assert server.open_streams() == 0


async def test_authorization_limits_and_unknown_operation(
        server: IpcServer, core: DictCore, drivers: Any) -> None:
    core.add("com.c", "tok-c", {"accessControl": {
        **pubsub_policy("com.c", ["aws.greengrass#PublishToTopic"], ["allowed/*"]),
        "aws.greengrass.ipc.mqttproxy": {"com.c:mqtt:1": {
            "operations": ["aws.greengrass#PublishToIoTCore"], "resources": ["dev/#"]}}}})
    c, refused = await asyncio.gather(drivers(server.socket_path, "tok-c"),
                                      drivers(server.socket_path, "no-such-token"))
    assert not refused.connected
    assert refused.hello["error"] == "AccessDeniedError", refused.hello
    assert c.connected, c.hello

    sink = core.bus.subscribe("#", owner="test")
    await c("publish_json", topic="allowed/x", message={"ok": 1})
    assert (await asyncio.wait_for(sink.get(), 5)).json() == {"ok": 1}

    async def error_of(cmd: str, **kw: Any) -> IpcError:
        with pytest.raises(IpcError) as e:
            await c(cmd, **kw)
        return e.value

    e = await error_of("publish_json", topic="denied/x", message={})
    assert e.kind == "UnauthorizedError"
    assert "com.c" in e.message and "aws.greengrass#PublishToTopic" in e.message
    assert "denied/x" in e.message
    e = await error_of("subscribe", topic="allowed/x")      # publish-only policy
    assert e.kind == "UnauthorizedError" and "SubscribeToTopic" in e.message
    e = await error_of("publish_json", topic="allowed/+", message={})
    assert e.kind == "InvalidArgumentsError" and "allowed/+" in e.message
    e = await error_of("publish_binary", topic="allowed/big", b64=b64(b"x" * 5000))
    assert e.kind == "InvalidArgumentsError" and "5000 bytes" in e.message
    assert "at most 4096" in e.message
    e = await error_of("pause", component="com.c")
    assert e.kind == "ServiceError"
    assert "aws.greengrass#PauseComponent" in e.message and "PublishToTopic" in e.message
    e = await error_of("publish_iot", topic="elsewhere/1", b64=b64(b"x"))
    assert e.kind == "UnauthorizedError" and "mqttproxy" in e.message
    e = await error_of("publish_iot", topic="dev/1", b64=b64(b"x"))
    assert e.kind == "ServiceError" and "no MQTT broker" in e.message
    e = await error_of("details", component="com.c")        # needs an aws.greengrass.Cli policy
    assert e.kind == "UnauthorizedError" and "aws.greengrass.Cli" in e.message

    # Nothing refused reached the bus, and the connection still works after all those errors.
    await c("publish_json", topic="allowed/y", message=[2])
    assert json.loads((await asyncio.wait_for(sink.get(), 5)).payload) == [2]
    assert sink.queued == 0
    await c.close()


async def test_driver_sees_closed_server(sock_dir: Any, core: DictCore, drivers: Any) -> None:
    """aclose() ends live connections and removes the socket; nothing is left running."""
    core.add("com.d", "tok-d", {"accessControl": pubsub_policy("com.d", ["*"], ["*"])})
    server = IpcServer(sock_dir / "ipc.socket", core)
    await server.start()
    d: Driver = await drivers(server.socket_path, "tok-d")
    await d("subscribe", topic="x")
    assert len(core.bus.subscriptions("com.d")) == 1
    await server.aclose()
    assert server.connections == 0
    assert core.bus.subscriptions("com.d") == []
    assert not server.socket_path.exists()
    with pytest.raises(IpcError):
        await d("publish_json", topic="x", message=1)
