"""LambdaConfig: Greengrass keys, defaults, float/str numbers and errors that name the key."""

from __future__ import annotations

import pytest

from sprig.errors import ValidationError
from sprig.functions.config import LambdaConfig
from sprig.lambda_params import (
    ContainerMode,
    DeviceMount,
    EventSource,
    EventSourceType,
    PayloadEncoding,
    VolumeMount,
)


def test_defaults_match_greengrass() -> None:
    c = LambdaConfig.from_configuration({})
    assert (c.pinned, c.timeout_s, c.max_idle_s, c.max_instances, c.max_queue_size,
            c.status_timeout_s) == (True, 3, 60, 100, 1000, 60)
    assert c.encoding is PayloadEncoding.JSON
    assert c.container_mode is ContainerMode.GREENGRASS_CONTAINER
    assert (c.memory_kb, c.mount_ro_sysfs, c.volumes, c.devices) == (16384, False, (), ())
    assert c == LambdaConfig()


def test_generated_recipe_configuration_with_floats() -> None:
    cfg = {
        "lambdaExecutionParameters": {"EnvironmentVariables": {"A": "1", "N": 2.0}},
        "containerParams": {
            "memorySize": 32768.0, "mountROSysfs": "true",
            "volumes": {"1": {"sourcePath": "/b", "destinationPath": "/y"},
                        "0": {"sourcePath": "/a", "destinationPath": "/x", "permission": "rw",
                              "addGroupOwner": True}},
            "devices": {"0": {"path": "/dev/ttyS2", "permission": "rw"}},
        },
        "containerMode": "NoContainer", "timeoutInSeconds": "5", "maxInstancesCount": 2.0,
        "inputPayloadEncodingType": "binary", "maxQueueSize": 10, "pinned": False,
        "maxIdleTimeInSeconds": 30.0, "statusTimeoutInSeconds": 60,
        "pubsubTopics": {"0": {"topic": "a/+", "type": "IOT_CORE"}, "1": {"topic": "b"}},
    }
    c = LambdaConfig.from_configuration(cfg, "recipe.yaml")
    assert c.environment == {"A": "1", "N": "2"}
    assert c.memory_kb == 32768 and c.mount_ro_sysfs
    assert c.volumes == (VolumeMount("/a", "/x", True, True), VolumeMount("/b", "/y"))
    assert c.devices == (DeviceMount("/dev/ttyS2", True),)
    assert c.container_mode is ContainerMode.NO_CONTAINER
    assert (c.timeout_s, c.max_instances, c.max_queue_size, c.pinned) == (5, 2, 10, False)
    assert c.encoding is PayloadEncoding.BINARY
    assert c.event_sources == (EventSource("a/+", EventSourceType.IOT_CORE), EventSource("b"))


@pytest.mark.parametrize(("cfg", "path", "allowed"), [
    ({"timeoutInSeconds": 0}, "timeoutInSeconds", "from 1 to 2147483647"),
    ({"timeoutInSeconds": 2.5}, "timeoutInSeconds", "whole number"),
    ({"maxIdleTimeInSeconds": 10}, "maxIdleTimeInSeconds", "from 30"),
    ({"statusTimeoutInSeconds": "abc"}, "statusTimeoutInSeconds", "from 30"),
    ({"maxQueueSize": True}, "maxQueueSize", "from 1"),
    ({"containerParams": {"memorySize": 1024}}, "containerParams.memorySize", "from 2048"),
    ({"pinned": "yes"}, "pinned", "true or false"),
    ({"inputPayloadEncodingType": "xml"}, "inputPayloadEncodingType", "json or binary"),
    ({"containerMode": "Docker"}, "containerMode", "GreengrassContainer or NoContainer"),
    ({"containerParams": {"devices": {"0": {"path": "/tmp/x"}}}},
     "containerParams.devices.0.path", "/dev/"),
    ({"containerParams": {"volumes": {"0": {"sourcePath": "/sys/x", "destinationPath": "/x"}}}},
     "containerParams.volumes.0.sourcePath", "outside /sys"),
    ({"containerParams": {"volumes": {"0": {"sourcePath": "/a", "destinationPath": "rel"}}}},
     "containerParams.volumes.0.destinationPath", "absolute path"),
    ({"containerParams": {"volumes": {"0": {"sourcePath": "/a", "destinationPath": "/b",
                                            "permission": "x"}}}},
     "containerParams.volumes.0.permission", "ro or rw"),
    ({"pubsubTopics": {"0": {"topic": "t", "type": "MQTT"}}}, "pubsubTopics.0.type",
     "PUB_SUB or IOT_CORE"),
    ({"lambdaExecutionParameters": {"EnvironmentVariables": {"A": ["x"]}}},
     "lambdaExecutionParameters.EnvironmentVariables.A", "a string"),
])
def test_errors_name_key_value_and_allowed(cfg: dict[str, object], path: str,
                                           allowed: str) -> None:
    with pytest.raises(ValidationError) as e:
        LambdaConfig.from_configuration(cfg, "recipe.yaml")
    assert e.value.path == path and e.value.source == "recipe.yaml"
    assert e.value.allowed and allowed in e.value.allowed
    assert path in str(e.value) and "got" in str(e.value)


@pytest.mark.parametrize(("cfg", "message", "allowed"), [
    ({"pinned": False, "maxInstancesCount": 2, "minInstancesCount": 3},
     "larger than maxInstancesCount", "from 0 to maxInstancesCount (2)"),
    ({"pinned": False, "minInstancesCount": -1}, "out of range", "from 0 to"),
    ({"pinned": False, "minInstancesCount": "two"}, "must be a number", "from 0 to"),
    ({"pinned": True, "minInstancesCount": 1}, "on-demand functions only", "when pinned"),
    ({"minInstancesCount": 1}, "on-demand functions only", "when pinned"),   # pinned default
])
def test_min_instances_bad_values(cfg: dict[str, object], message: str, allowed: str) -> None:
    with pytest.raises(ValidationError) as e:
        LambdaConfig.from_configuration(cfg)
    assert e.value.path == "minInstancesCount" and message in str(e.value)
    assert e.value.allowed and allowed in e.value.allowed
    assert "got" in str(e.value)


def test_min_instances_good_values() -> None:
    cfg = LambdaConfig.from_configuration({"pinned": False, "maxInstancesCount": 4,
                                           "minInstancesCount": "4"})
    assert cfg.min_instances == 4
    assert LambdaConfig.from_configuration({"pinned": True, "minInstancesCount": 0}
                                           ).min_instances == 0
    assert not LambdaConfig().needs_restart(LambdaConfig(min_instances=2))


def test_needs_restart() -> None:
    base = LambdaConfig()
    assert not base.needs_restart(LambdaConfig(timeout_s=10, max_instances=3))
    assert base.needs_restart(LambdaConfig(environment={"A": "b"}))
    assert base.needs_restart(LambdaConfig(pinned=False))


@pytest.mark.parametrize(("cfg", "path", "suggestion"), [
    ({"timeoutInSecond": 30}, "timeoutInSecond", "timeoutInSeconds"),
    ({"containerParams": {"memorySizeInKB": 65536}}, "containerParams.memorySizeInKB",
     "memorySize"),
    ({"containerParams": {"mountRoSysfs": True}}, "containerParams.mountRoSysfs", "mountROSysfs"),
    ({"lambdaExecutionParameters": {"environmentVariables": {}}},
     "lambdaExecutionParameters.environmentVariables", "EnvironmentVariables"),
    ({"containerParams": {"volumes": {"0": {"sourcePath": "/a", "destinationPath": "/b",
                                            "permisson": "rw"}}}},
     "containerParams.volumes.0.permisson", "permission"),
    ({"pubsubTopics": {"0": {"topic": "a", "typ": "PUB_SUB"}}}, "pubsubTopics.0.typ", "type"),
])
def test_a_key_the_parser_does_not_read_is_refused_with_did_you_mean(
        cfg: dict[str, object], path: str, suggestion: str | None) -> None:
    """A typo would otherwise quietly become the default (3 s, 16 MB, no /sys): issue 13."""
    with pytest.raises(ValidationError) as info:
        LambdaConfig.from_configuration(cfg, "component Fn", strict=True)
    err = info.value
    assert err.path == path and err.source == "component Fn"
    assert "is not a Lambda configuration key Sprig reads" in err.message
    if suggestion:
        assert f"did you mean {suggestion!r}" in err.message
    else:
        assert "did you mean" not in err.message
    assert err.allowed


def test_access_control_is_not_the_lambda_managers_but_allowed() -> None:
    assert LambdaConfig.from_configuration({"accessControl": {}}) == LambdaConfig()


def test_the_function_s_own_top_level_keys_are_its_own() -> None:
    """A function may keep its own keys in its configuration (and read them over IPC); only a
    near miss of a Lambda key, or an import-API name, is refused at deployment."""
    own = {"note": "mine", "thresholds": {"high": 3}}
    assert LambdaConfig.from_configuration(own, strict=True) == LambdaConfig()
    with pytest.raises(ValidationError) as info:
        LambdaConfig.from_configuration({"isolationMode": "NoContainer"}, strict=True)
    assert "in a configuration it is containerMode" in str(info.value)
    with pytest.raises(ValidationError, match="not configuration"):
        LambdaConfig.from_configuration({"execArgs": ["-v"]}, strict=True)
    # The running core (configuration a component changed over IPC) ignores them all.
    assert LambdaConfig.from_configuration({"timeoutInSecond": 9}) == LambdaConfig()
    with pytest.raises(ValidationError, match="memorySizeInKB"):      # never the manager's
        LambdaConfig.from_configuration({"containerParams": {"memorySizeInKB": 1}})
