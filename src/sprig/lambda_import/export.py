"""The reverse of the import: a deployed Lambda component's configuration back in the
``componentLambdaParameters`` shape, so a user can round-trip (``sprig lambda export-params``).

Configuration read back from a device is looser than what we generate: numbers may have become
floats (``3.0``) or strings, maps keyed ``"0"``, ``"1"``… stand for lists, volumes may use
``source``/``destination`` (seen in a Greengrass test fixture) instead of ``sourcePath``/
``destinationPath``, and event-source types may be spelled ``Pubsub``/``IotCore`` (AWS-provided
Lambda components). All of those are accepted and normalised. Missing keys take their defaults,
so the result is the *effective* parameters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from sprig.lambda_import.model import LambdaParameters
from sprig.lambda_import.recipe import ENV_EXEC_ARGS, HANDLER_ARG

_TYPE_ALIASES = {"pubsub": "PUB_SUB", "pub_sub": "PUB_SUB", "iotcore": "IOT_CORE",
                 "iot_core": "IOT_CORE"}


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return int(number) if number.is_integer() else default


def _bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _entries(value: Any) -> list[Any]:
    """A list, or a map keyed by index strings, as an ordered list."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        keys = sorted(value, key=lambda k: (0, int(k)) if str(k).isdigit() else (1, str(k)))
        return [value[k] for k in keys]
    return []


def _mount_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"permission": str(entry.get("permission") or "ro").lower(),
            "addGroupOwner": _bool(entry.get("addGroupOwner"), False)}


def configuration_to_lambda_parameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """Map a Lambda component's configuration (reference §2.2 keys) to
    ``componentLambdaParameters``. ``execArgs`` is not configuration (it lives in the recipe's
    setenv; see :func:`exec_args_from_recipe`), so it is returned empty."""
    d = LambdaParameters()
    cp_default = d.container_params
    lep = config.get("lambdaExecutionParameters")
    env = lep.get("EnvironmentVariables") if isinstance(lep, Mapping) else None
    cp = config.get("containerParams")
    cp = cp if isinstance(cp, Mapping) else {}
    volumes = [{"sourcePath": str(v.get("sourcePath", v.get("source", ""))),
                "destinationPath": str(v.get("destinationPath", v.get("destination", ""))),
                **_mount_options(v)}
               for v in _entries(cp.get("volumes")) if isinstance(v, Mapping)]
    devices = [{"path": str(v.get("path", "")), **_mount_options(v)}
               for v in _entries(cp.get("devices")) if isinstance(v, Mapping)]
    sources = [{"topic": str(e.get("topic", "")),
                "type": _TYPE_ALIASES.get(str(e.get("type", "")).lower(),
                                          str(e.get("type", "PUB_SUB")))}
               for e in _entries(config.get("pubsubTopics")) if isinstance(e, Mapping)]
    return {
        "eventSources": sources,
        "maxQueueSize": _int(config.get("maxQueueSize"), d.max_queue_size),
        "maxInstancesCount": _int(config.get("maxInstancesCount"), d.max_instances_count),
        "maxIdleTimeInSeconds": _int(config.get("maxIdleTimeInSeconds"),
                                     d.max_idle_time_in_seconds),
        "timeoutInSeconds": _int(config.get("timeoutInSeconds"), d.timeout_in_seconds),
        "statusTimeoutInSeconds": _int(config.get("statusTimeoutInSeconds"),
                                       d.status_timeout_in_seconds),
        "pinned": _bool(config.get("pinned"), d.pinned),
        "inputPayloadEncodingType": str(config.get("inputPayloadEncodingType")
                                        or d.input_payload_encoding_type.value),
        "execArgs": [],
        "environmentVariables": {str(k): str(v) for k, v in env.items()}
        if isinstance(env, Mapping) else {},
        "linuxProcessParams": {
            "isolationMode": str(config.get("containerMode") or d.isolation_mode.value),
            "containerParams": {
                "memorySizeInKB": _int(cp.get("memorySize"), cp_default.memory_size_kb),
                "mountROSysfs": _bool(cp.get("mountROSysfs"), cp_default.mount_ro_sysfs),
                "volumes": volumes,
                "devices": devices,
            },
        },
    }


def _get_ci(doc: Mapping[str, Any], key: str) -> Any:
    """``doc[key]`` with the key matched case-insensitively, as Greengrass matches recipe keys
    (generated recipes write ``setenv``, the docs ``Setenv``)."""
    for k, v in doc.items():
        if str(k).lower() == key.lower():
            return v
    return None


def _setenv(recipe: Mapping[str, Any]) -> Mapping[str, Any]:
    lifecycle = _get_ci(recipe, "Lifecycle")
    if not isinstance(lifecycle, Mapping):
        return {}
    setenv = _get_ci(lifecycle, "Setenv")
    return setenv if isinstance(setenv, Mapping) else {}


def exec_args_from_recipe(recipe: Mapping[str, Any] | str | None) -> list[str]:
    """The user's ``execArgs``: what follows ``--handler=…`` in the setenv EXEC_ARGS array."""
    if isinstance(recipe, str):
        try:
            recipe = yaml.safe_load(recipe)
        except yaml.YAMLError:
            return []
    if not isinstance(recipe, Mapping):
        return []
    raw = _setenv(recipe).get(ENV_EXEC_ARGS)
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return []
    if not isinstance(args, list):
        return []
    for i, arg in enumerate(args):
        if isinstance(arg, str) and arg.startswith(HANDLER_ARG):
            return [str(a) for a in args[i + 1:]]
    return []


def effective_lambda_function(details: Mapping[str, Any]) -> dict[str, Any]:
    """From ``component.details`` (name, version, configuration, recipe), the ``lambdaFunction``
    document that imports the same function with the parameters it has now."""
    recipe = details.get("recipe")
    config = details.get("configuration")
    params = configuration_to_lambda_parameters(config if isinstance(config, Mapping) else {})
    params["execArgs"] = exec_args_from_recipe(recipe)
    out: dict[str, Any] = {}
    arn: Any = None
    if isinstance(recipe, Mapping):
        arn = _setenv(recipe).get("AWS_GREENGRASS_LAMBDA_ARN") or \
            _get_ci(recipe, "ComponentSource")
    function = details.get("function")
    if not arn and isinstance(function, Mapping):
        arn = function.get("arn")
    if arn:
        out["lambdaArn"] = str(arn)
    if details.get("name"):
        out["componentName"] = str(details["name"])
    if details.get("version"):
        out["componentVersion"] = str(details["version"])
    out["componentLambdaParameters"] = params
    return {"lambdaFunction": out}


def lambda_parameters_to_document(p: LambdaParameters) -> dict[str, Any]:
    """A full :class:`LambdaParameters` in the ``componentLambdaParameters`` shape (the same
    shape :func:`configuration_to_lambda_parameters` returns)."""
    cp = p.container_params
    return {
        "eventSources": [{"topic": e.topic, "type": e.type.value} for e in p.event_sources],
        "maxQueueSize": p.max_queue_size,
        "maxInstancesCount": p.max_instances_count,
        "maxIdleTimeInSeconds": p.max_idle_time_in_seconds,
        "timeoutInSeconds": p.timeout_in_seconds,
        "statusTimeoutInSeconds": p.status_timeout_in_seconds,
        "pinned": p.pinned,
        "inputPayloadEncodingType": p.input_payload_encoding_type.value,
        "execArgs": list(p.exec_args),
        "environmentVariables": dict(p.environment_variables),
        "linuxProcessParams": {
            "isolationMode": p.isolation_mode.value,
            "containerParams": {
                "memorySizeInKB": cp.memory_size_kb,
                "mountROSysfs": cp.mount_ro_sysfs,
                "volumes": [{"sourcePath": v.source_path, "destinationPath": v.destination_path,
                             "permission": v.permission.value,
                             "addGroupOwner": v.add_group_owner} for v in cp.volumes],
                "devices": [{"path": d.path, "permission": d.permission.value,
                             "addGroupOwner": d.add_group_owner} for d in cp.devices],
            },
        },
    }
