"""Configuration and lifecycle operations with the real awsiotsdk client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sprig.config.protected import Reference
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


LAMBDA = "aws.greengrass.lambda"


async def test_no_privilege_through_configuration(server: IpcServer, core: DictCore,
                                                  drivers: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A Lambda component cannot change what the Lambda manager reads, nor anyone what a
    privileged step interpolates (its own keys or, through a reference, another's)."""
    core.add("Fn", "tok-fn", {"containerMode": "GreengrassContainer", "mine": {"k": 1},
                              "containerParams": {"memorySize": 16384}}, component_type=LAMBDA)
    core.add("Gen", "tok-gen", {"cmd": "ls", "x": {"y": 1}, "free": 0})
    core.references = [
        Reference("Gen", ("cmd",), "the RequiresPrivilege Install step of Gen"),
        Reference("Fn", ("mine", "k"), "the RequiresPrivilege Install step of Other")]
    fn = await drivers(server.socket_path, "tok-fn")
    gen = await drivers(server.socket_path, "tok-gen")
    refused = [
        (fn, ["containerParams"], {"volumes": {"0": {"sourcePath": "/etc/shadow",
                                                     "destinationPath": "/x",
                                                     "addGroupOwner": True}}},
         "/containerParams"),
        (fn, ["containerParams", "volumes"], {}, "/containerParams"),
        (fn, ["containerMode"], "NoContainer", "/containerMode"),
        (fn, [], {"containerMode": "NoContainer"}, "/containerMode"),
        (fn, ["lambdaExecutionParameters"], {"EnvironmentVariables": {"LD_PRELOAD": "/x.so"}},
         "/lambdaExecutionParameters"),
        (fn, ["pubsubTopics"], {"9": {"topic": "#", "type": "PUB_SUB"}}, "/pubsubTopics"),
        (fn, ["maxInstancesCount"], 100000, "/maxInstancesCount"),
        (fn, ["mine"], {"k": 2}, "/mine/k"),
        (fn, ["accessControl"], {}, "/accessControl"),
        (gen, ["cmd"], "id > /tmp/x", "/cmd"),
        (gen, [], {"cmd": "x", "free": 1}, "/cmd"),
    ]
    for client, path, value, key in refused:
        with pytest.raises(IpcError) as e:
            await client("update_config", keyPath=path, value=value)
        assert e.value.kind == "UnauthorizedError", e.value
        assert key in e.value.message and "deployment" in e.value.message, e.value.message
    assert core.configs["Fn"] == {"containerMode": "GreengrassContainer", "mine": {"k": 1},
                                  "containerParams": {"memorySize": 16384}}
    assert core.configs["Gen"] == {"cmd": "ls", "x": {"y": 1}, "free": 0}
    # Everything else stays writable, also through the root or a protected key's parent.
    await fn("update_config", keyPath=[], value={"message": "hi", "mine": {"other": 2}})
    await gen("update_config", keyPath=["x"], value={"y": 2})
    await gen("update_config", keyPath=[], value={"free": 1})
    assert core.configs["Fn"]["message"] == "hi" and core.configs["Fn"]["mine"] == {
        "k": 1, "other": 2}
    assert core.configs["Gen"] == {"cmd": "ls", "x": {"y": 2}, "free": 1}
    # Each refusal is one WARNING line naming the caller, the operation and the key.
    warnings = [r for r in caplog.records
                if r.levelname == "WARNING" and r.name == "sprig.ipc"]
    assert len(warnings) == len(refused)
    first = warnings[0].getMessage()
    assert first.startswith("Fn: UpdateConfiguration refused: keyPath '/containerParams'")
    assert "/containerParams of Fn" in first and "\n" not in first
    assert warnings[0].exc_info is None
    assert warnings[-1].getMessage().startswith("Gen: UpdateConfiguration refused: keyPath '/'")


async def test_reading_hides_secret_values_and_other_functions_environment(
        server: IpcServer, core: DictCore, drivers: Any) -> None:
    env = {"DB_PASSWORD": "s3cret-env"}
    core.add("aws.greengrass.SecretManager", "tok-sm", {"secrets": {"db": {
        "secretString": "s3cret-string", "arn": "arn:aws:secretsmanager:r:1:secret:db"}}})
    core.add("Fn", "tok-fn", {"lambdaExecutionParameters": {"EnvironmentVariables": env}},
             component_type=LAMBDA)
    core.add("Reader", "tok-r", {"accessControl": {"aws.greengrass.Cli": {"Reader:cli:1": {
        "operations": ["aws.greengrass#GetComponentDetails"], "resources": ["*"]}}}})
    reader = await drivers(server.socket_path, "tok-r")
    fn = await drivers(server.socket_path, "tok-fn")
    sm = await drivers(server.socket_path, "tok-sm")
    answers = [
        await reader("get_config", component="aws.greengrass.SecretManager", keyPath=[]),
        await reader("get_config", component="aws.greengrass.SecretManager",
                     keyPath=["secrets", "db", "secretString"]),
        await sm("get_config", keyPath=["secrets"]),
        await reader("get_config", component="Fn", keyPath=[]),
        await reader("get_config", component="Fn",
                     keyPath=["lambdaExecutionParameters", "EnvironmentVariables"]),
        await reader("details", component="aws.greengrass.SecretManager"),
        await reader("details", component="Fn"),
    ]
    text = json.dumps(answers)
    assert "s3cret" not in text, text
    assert answers[1]["value"] == {"secretString": "** redacted **"}
    assert answers[4]["value"] == {"DB_PASSWORD": "** redacted **"}
    assert answers[2]["value"]["db"]["arn"] == "arn:aws:secretsmanager:r:1:secret:db"
    # A function reads its own environment.
    own = await fn("get_config", keyPath=["lambdaExecutionParameters"])
    assert own["value"] == {"EnvironmentVariables": env}
