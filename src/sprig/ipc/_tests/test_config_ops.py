"""Configuration and lifecycle operations with the real awsiotsdk client."""

from __future__ import annotations

from typing import Any

import pytest

from sprig.ipc._tests.conftest import DictCore, IpcError
from sprig.ipc.config_ops import get_response_value, paths_overlap
from sprig.ipc.server import IpcServer


def test_get_response_value_and_overlap() -> None:
    cfg = {"a": {"b": 1, "m": {"x": None}}, "l": [1, 2]}
    assert get_response_value(cfg, []) == cfg
    assert get_response_value(cfg, ["a", "b"]) == {"b": 1}
    assert get_response_value(cfg, ["a", "m"]) == {"x": None}
    assert get_response_value(cfg, ["l"]) == {"l": [1, 2]}
    with pytest.raises(KeyError, match="a/b/c"):
        get_response_value(cfg, ["a", "b", "c"])
    assert paths_overlap([], ["a"]) and paths_overlap(["a", "b"], ["a"])
    assert paths_overlap(["a"], ["a", "b"]) and not paths_overlap(["a", "b"], ["a", "c"])


async def test_configuration_state_and_details(server: IpcServer, core: DictCore,
                                               drivers: Any) -> None:
    core.add("com.me", "tok-me", {
        "mqtt": {"port": 443, "hosts": ["h1"]}, "flag": True,
        "accessControl": {"aws.greengrass.Cli": {"com.me:cli:1": {
            "operations": ["aws.greengrass#GetComponentDetails"], "resources": ["com.other"]}}}})
    core.add("com.other", "tok-other", {"shared": {"k": "v"}})
    me = await drivers(server.socket_path, "tok-me")
    assert me.connected, me.hello

    async def error_of(cmd: str, **kw: Any) -> IpcError:
        with pytest.raises(IpcError) as e:
            await me(cmd, **kw)
        return e.value

    # GetConfiguration: own (map, leaf, whole) and another component's, no policy needed.
    assert await me("get_config", keyPath=["mqtt"]) == {
        "componentName": "com.me", "value": {"port": 443, "hosts": ["h1"]}}
    assert (await me("get_config", keyPath=["mqtt", "port"]))["value"] == {"port": 443}
    assert (await me("get_config", keyPath=[]))["value"]["flag"] is True
    assert await me("get_config", component="com.other", keyPath=["shared"]) == {
        "componentName": "com.other", "value": {"k": "v"}}
    e = await error_of("get_config", keyPath=["mqtt", "nope"])
    assert e.kind == "ResourceNotFoundError" and "mqtt/nope" in e.message
    e = await error_of("get_config", component="com.ghost", keyPath=["x"])
    assert e.kind == "ResourceNotFoundError" and "com.ghost" in e.message

    # SubscribeToConfigurationUpdate on a key path, then UpdateConfiguration of the own config.
    sub = await me("subscribe_config", keyPath=["mqtt"])
    await me("update_config", keyPath=["unrelated"], value={"z": 1})
    await me("update_config", keyPath=["mqtt"], value={"port": 8883})
    assert await me.events(sub, 1) == [{"component": "com.me", "keyPath": ["mqtt", "port"]}]
    assert core.configs["com.me"]["mqtt"] == {"port": 8883, "hosts": ["h1"]}
    assert core.configs["com.me"]["unrelated"] == {"z": 1}
    await me("update_config", keyPath=["mqtt", "hosts"], value={"list": ["h2"]})
    events = await me.events(sub, 2)
    assert events == [{"component": "com.me", "keyPath": ["mqtt", "port"]},
                      {"component": "com.me", "keyPath": ["mqtt", "hosts", "list"]}]
    e = await error_of("update_config", keyPath=["accessControl"], value={"x": {}})
    assert e.kind == "UnauthorizedError" and "accessControl" in e.message
    e = await error_of("update_config", keyPath=[], value={"accessControl": {}})
    assert e.kind == "UnauthorizedError"
    assert "accessControl" in core.configs["com.me"]
    await me("close_sub", sub=sub)
    await me("update_state", state="RUNNING")          # also orders the close before this
    assert core.watchers["com.me"] == []

    # UpdateState
    await me("update_state", state="ERRORED")
    assert core.states["com.me"] == ["RUNNING", "ERRORED"]
    e = await error_of("update_state", state="BROKEN")
    assert e.kind == "InvalidArgumentsError" and "RUNNING or ERRORED" in e.message

    # GetComponentDetails: allowed for com.other by the aws.greengrass.Cli policy, not for self.
    assert await me("details", component="com.other") == {
        "componentName": "com.other", "version": "1.0.0", "state": "RUNNING",
        "configuration": {"shared": {"k": "v"}}}
    e = await error_of("details", component="com.me")
    assert e.kind == "UnauthorizedError"
    await me.close()
