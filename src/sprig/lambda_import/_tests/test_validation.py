"""Every validation rule, with its exact error: the field, the value and what is allowed.

The expected messages are in golden/validation_errors.json (one per case name).
"""

from __future__ import annotations

from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.lambda_import.documents import check_function_configuration, check_lambda_function
from sprig.lambda_import.params import ImportFlags, resolve

from .helpers import golden

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
BASE = ImportFlags(runtime="python3.11", handler="app.handler")
PY = {"runtime": "python3.11", "handler": "a.b", "name": "f"}


def doc(**kw: Any) -> dict[str, Any]:
    return {"lambdaFunction": {"lambdaArn": ARN + ":1", **kw}}


def params(**kw: Any) -> dict[str, Any]:
    return doc(componentLambdaParameters=kw)


def container(**kw: Any) -> dict[str, Any]:
    return params(linuxProcessParams={"containerParams": kw})


def flags(**kw: Any) -> dict[str, Any]:
    return {"flags": ImportFlags(**{**PY, **kw})}


def run(case: dict[str, Any]) -> None:
    d, c = case.get("doc"), case.get("config")
    resolve(
        case.get("flags", BASE),
        check_lambda_function(d) if d is not None else None,
        check_function_configuration(c) if c is not None else None,
    )


CASES: dict[str, dict[str, Any]] = {
    "arn_latest": {"doc": {"lambdaFunction": {"lambdaArn": ARN + ":$LATEST"}}},
    "arn_alias": {"doc": {"lambdaFunction": {"lambdaArn": ARN + ":prod"}}},
    "arn_unversioned": {"doc": {"lambdaFunction": {"lambdaArn": ARN}}},
    "arn_malformed": {"doc": {"lambdaFunction": {"lambdaArn": "arn:aws:s3:::bucket"}}},
    "arn_flag_latest": {
        "flags": ImportFlags(runtime="python3.11", handler="a.b", arn=ARN + ":$LATEST")
    },
    "config_latest": {
        "config": {
            "FunctionName": "f",
            "FunctionArn": ARN,
            "Version": "$LATEST",
            "Runtime": "python3.11",
            "Handler": "a.b",
        },
        "flags": ImportFlags(),
    },
    "image": {"config": {"FunctionName": "f", "PackageType": "Image"}},
    "timeout_min": {"doc": params(timeoutInSeconds=0)},
    "timeout_max": {"doc": params(timeoutInSeconds=2147483648)},
    "status_min": {"doc": params(statusTimeoutInSeconds=29)},
    "queue_min": {"doc": params(maxQueueSize=0)},
    "instances_min": {"doc": params(maxInstancesCount=0)},
    "idle_min": {"doc": params(maxIdleTimeInSeconds=29)},
    "memory_min": {"doc": container(memorySizeInKB=2047)},
    "timeout_type": {"doc": params(timeoutInSeconds="3")},
    "timeout_bool": {"doc": params(timeoutInSeconds=True)},
    "pinned_type": {"doc": params(pinned="true")},
    "device_not_dev": {"doc": container(devices=[{"path": "/tmp/ttyS0"}])},
    "device_dev_itself": {"doc": container(devices=[{"path": "/dev"}])},
    "volume_sys": {
        "doc": container(volumes=[{"sourcePath": "/sys/class/gpio", "destinationPath": "/gpio"}])
    },
    "volume_sys_dotdot": {
        "doc": container(volumes=[{"sourcePath": "/var/../sys", "destinationPath": "/s"}])
    },
    "volume_proc": {
        "doc": container(volumes=[{"sourcePath": "/var/data", "destinationPath": "/proc/data"}])
    },
    "volume_relative": {
        "doc": container(volumes=[{"sourcePath": "data", "destinationPath": "/data"}])
    },
    "volume_missing_dest": {"doc": container(volumes=[{"sourcePath": "/data"}])},
    "volume_permission": {
        "doc": container(
            volumes=[{"sourcePath": "/data", "destinationPath": "/d", "permission": "rwx"}]
        )
    },
    "device_permission": {"doc": container(devices=[{"path": "/dev/ttyS0", "permission": "RW"}])},
    "event_type": {"doc": params(eventSources=[{"topic": "a/b", "type": "LOCAL"}])},
    "event_topic_missing": {"doc": params(eventSources=[{"type": "PUB_SUB"}])},
    "event_bad_filter": {"doc": params(eventSources=[{"topic": "a/#/b", "type": "PUB_SUB"}])},
    "isolation": {"doc": params(linuxProcessParams={"isolationMode": "Docker"})},
    "encoding": {"doc": params(inputPayloadEncodingType="text")},
    "unknown_doc_key": {"doc": doc(lambdaRuntime="python3.8")},
    "unknown_param_key": {"doc": params(timeout=3)},
    "unknown_container_key": {"doc": container(memorySize=2048)},
    "unknown_config_key": {"config": {"FunctionName": "f", "Handlr": "a.b"}},
    "config_timeout_type": {"config": {"FunctionName": "f", "Timeout": "3"}},
    "config_env_type": {"config": {"FunctionName": "f", "Environment": {"Variables": ["A=1"]}}},
    "config_arch": {"config": {"FunctionName": "f", "Architectures": ["sparc"]}},
    "runtime_go": {"flags": ImportFlags(runtime="go1.x", handler="main", name="f")},
    "runtime_config_dotnet": {
        "config": {"FunctionName": "f", "Runtime": "dotnet8", "Handler": "a::b"},
        "flags": ImportFlags(),
    },
    "runtime_missing": {"flags": ImportFlags(handler="a.b", name="f")},
    "handler_missing": {"flags": ImportFlags(runtime="python3.11", name="f")},
    "name_missing": {"flags": ImportFlags(runtime="python3.11", handler="a.b")},
    "component_version": {"doc": doc(componentVersion="1.0")},
    "component_name": {"doc": doc(componentName="a/b")},
    "dependency_range": {
        "doc": doc(componentDependencies={"x.Y": {"versionRequirement": "latest!"}})
    },
    "dependency_type": {"doc": doc(componentDependencies={"x.Y": {"dependencyType": "WEAK"}})},
    "platforms_type": {"doc": doc(componentPlatforms={"os": "linux"})},
    "env_type": {"doc": params(environmentVariables={"A": 1})},
    "execargs_type": {"doc": params(execArgs="--x")},
    "flag_timeout": flags(timeout="3s"),
    "flag_timeout_range": flags(timeout="0"),
    "flag_memory": flags(memory_kb="1024"),
    "flag_event": flags(event_sources=("topic",)),
    "flag_event_type": flags(event_sources=("t/1:MQTT",)),
    "flag_env": flags(env=("NOVALUE",)),
    "flag_volume": flags(volumes=("/data",)),
    "flag_volume_sys": flags(volumes=("/sys:/sys",)),
    "flag_device": flags(devices=("/home/x",)),
    "flag_isolation": flags(isolation="none"),
    "flag_version": flags(version="2"),
    "flag_name_offline": {
        "flags": ImportFlags(runtime="python3.11", handler="a.b", name="com.example.F")
    },
    "flag_region": flags(region="mars"),
    "handler_space": {"flags": ImportFlags(runtime="python3.11", handler="a b", name="f")},
    "wrapper_type": {"doc": ["lambdaArn"]},
    "wrapper_inline_recipe": {"doc": {"inlineRecipe": "e30=", "tags": {}}},
    "wrapper_unknown_key": {"doc": {"lambdaFunction": {"lambdaArn": ARN + ":1"}, "tag": {}}},
}
MESSAGES: dict[str, str] = golden("validation_errors.json")


def test_every_case_has_its_message() -> None:
    assert set(CASES) == set(MESSAGES)


@pytest.mark.parametrize("name", list(CASES))
def test_rule(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        run(CASES[name])
    assert str(info.value) == MESSAGES[name]


def test_the_whole_cli_input_json_is_accepted() -> None:
    run({"doc": {"lambdaFunction": {"lambdaArn": ARN + ":1"}, "tags": {"team": "a"},
                 "clientToken": "abc-123"}})


def test_the_bounds_themselves_pass() -> None:
    run(
        {
            "doc": params(
                timeoutInSeconds=1,
                statusTimeoutInSeconds=30,
                maxIdleTimeInSeconds=30,
                maxQueueSize=1,
                maxInstancesCount=1,
                linuxProcessParams={"containerParams": {"memorySizeInKB": 2048}},
            )
        }
    )
    run(
        flags(
            timeout="2147483647",
            memory_kb="2048",
            devices=("/dev/ttyS0:rw",),
            volumes=("/var/sys:/data/proc:rw",),
            event_sources=("a/+/c:IOT_CORE", "x:y:PUB_SUB"),
        )
    )
