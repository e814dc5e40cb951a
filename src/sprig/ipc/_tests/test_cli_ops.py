"""The operations of Greengrass's CLI IPC service with the real awsiotsdk client: each under an
``aws.greengrass.Cli`` policy naming it and its resource, answers in AWS's shapes, other
components' secrets redacted as GetConfiguration redacts them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from sprig.ipc._tests.conftest import DictCore, IpcError
from sprig.ipc.server import IpcServer


def cli_policy(name: str, operations: list[str], resources: list[str]) -> dict[str, Any]:
    return {"accessControl": {"aws.greengrass.Cli": {f"{name}:cli:1": {
        "operations": [f"aws.greengrass#{op}" for op in operations], "resources": resources}}}}


async def test_a_manager_component_lists_restarts_and_stops_what_its_policy_names(
        server: IpcServer, core: DictCore, drivers: Any) -> None:
    core.add("com.manager", "tok-m", cli_policy(
        "com.manager", ["ListComponents", "RestartComponent", "GetComponentDetails"],
        ["*"]) | {"x": 1})
    core.add("com.worker", "tok-w", {"level": "debug"})
    core.add("aws.greengrass.SecretManager", "tok-s", {"secrets": {"db": {
        "secretString": "hunter2", "arn": "arn:aws:secretsmanager:us-east-1:1:secret:db"}}})
    core.add("Fn", "tok-f", {"lambdaExecutionParameters": {"EnvironmentVariables": {
        "DB_PASSWORD": "hunter3"}}}, component_type="aws.greengrass.lambda")
    manager = await drivers(server.socket_path, "tok-m")

    listed = {c["componentName"]: c for c in await manager("list_components")}
    assert set(listed) == {"com.manager", "com.worker", "aws.greengrass.SecretManager", "Fn"}
    assert listed["com.worker"]["configuration"] == {"level": "debug"}
    assert listed["com.worker"]["state"] == "RUNNING" and listed["com.worker"]["version"]
    assert "hunter" not in str(listed)           # redacted as GetConfiguration redacts
    assert listed["Fn"]["configuration"]["lambdaExecutionParameters"] == {
        "EnvironmentVariables": {"DB_PASSWORD": "** redacted **"}}

    assert await manager("restart", component="com.worker") == "SUCCEEDED"
    assert core.commands == [("restart", "com.worker")]
    with pytest.raises(IpcError) as e:
        await manager("restart", component="com.ghost")
    assert e.value.kind == "ResourceNotFoundError"
    assert "com.ghost not found" in e.value.message
    # StopComponent is not in its policy: refused, nothing stopped.
    with pytest.raises(IpcError) as e:
        await manager("stop", component="com.worker")
    assert e.value.kind == "UnauthorizedError" and "StopComponent" in e.value.message
    assert core.commands == [("restart", "com.worker")]


async def test_stop_is_limited_to_the_components_the_policy_names(
        server: IpcServer, core: DictCore, drivers: Any) -> None:
    core.add("com.watchdog", "tok-d", cli_policy("com.watchdog", ["StopComponent"],
                                                 ["com.noisy"]))
    core.add("com.noisy", "tok-n")
    core.add("com.other", "tok-o")
    watchdog = await drivers(server.socket_path, "tok-d")
    assert await watchdog("stop", component="com.noisy") == "SUCCEEDED"
    with pytest.raises(IpcError) as e:
        await watchdog("stop", component="com.other")
    assert e.value.kind == "UnauthorizedError"
    with pytest.raises(IpcError) as e:
        await watchdog("list_components")
    assert e.value.kind == "UnauthorizedError"
    assert core.commands == [("stop", "com.noisy")]


async def test_local_deployments_in_the_cli_shapes(server: IpcServer, core: DictCore,
                                                   drivers: Any) -> None:
    ok, bad = str(uuid.uuid4()), str(uuid.uuid4())
    created = time.mktime((2026, 12, 3, 9, 5, 7, 0, 0, 0)) - time.timezone
    core.deployments = [
        {"deploymentId": bad, "status": "FAILED", "reason": "component x BROKEN",
         "createdAt": created},
        {"deploymentId": ok, "status": "SUCCEEDED", "reason": "", "createdAt": created}]
    core.add("com.ops", "tok-o", cli_policy(
        "com.ops", ["GetLocalDeploymentStatus", "ListLocalDeployments"], ["*"]))
    ops = await drivers(server.socket_path, "tok-o")
    assert await ops("local_deployment", deploymentId=bad) == {
        "deploymentId": bad, "status": "FAILED", "createdOn": "03-12-2026 09:05:07 UTC",
        "cause": "component x BROKEN"}
    assert [(d["deploymentId"], d["status"]) for d in await ops("local_deployments")] == [
        (bad, "FAILED"), (ok, "SUCCEEDED")]
    with pytest.raises(IpcError) as e:
        await ops("local_deployment", deploymentId="not-a-uuid")
    assert e.value.kind == "InvalidArgumentsError" and "UUID" in e.value.message
    with pytest.raises(IpcError) as e:
        await ops("local_deployment", deploymentId=str(uuid.uuid4()))
    assert e.value.kind == "ResourceNotFoundError"
