"""Configuration and lifecycle operations: GetConfiguration, UpdateConfiguration,
SubscribeToConfigurationUpdate, UpdateState (GetComponentDetails and the other operations of
Greengrass's CLI service are in :mod:`sprig.ipc.cli_ops`).

Rules, as Greengrass applies them, with Sprig's two guards (see ``README.md`` here):

* **Reading** configuration (GetConfiguration, SubscribeToConfigurationUpdate) needs no policy,
  for the caller's own component or any other (``componentName``; absent = the caller).
  GetConfiguration of a leaf answers ``{<last key>: value}``, of a map the map itself; a key path
  that does not exist is ResourceNotFoundError. What a reader sees is decided in one place,
  :func:`sprig.config.visibility.readable_configuration` (no secret values, no other Lambda
  component's environment variables), for GetConfiguration and GetComponentDetails alike.
* **Writing** (UpdateConfiguration) is for the caller's own component only, and never a
  protected key (:mod:`sprig.config.protected`: ``accessControl``, a Lambda component's
  manager keys, whatever root interpolates): configuration must not grant privilege. Refusals
  are UnauthorizedError naming the key, and a WARNING line in the core log naming the caller.
  The request's ``timestamp`` is checked for shape but not used for conflict detection (the
  core keeps no per-key timestamps).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Final

from sprig.config.pointer import format_pointer
from sprig.config.protected import reached_key
from sprig.config.visibility import readable_configuration
from sprig.ipc.call import Call, Reply, check_size, key_path, required_string, string
from sprig.ipc.core import ResourceNotFoundError, UnauthorizedError, invalid

log = logging.getLogger("sprig.ipc")

CONFIGURATION_UPDATE_EVENTS: Final = "aws.greengrass#ConfigurationUpdateEvents"
REPORTED_STATES: Final = ("RUNNING", "ERRORED")


def lookup(config: Mapping[str, Any], path: list[str]) -> Any:
    """The value at ``path`` in ``config``; raises KeyError naming the first missing key."""
    node: Any = config
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError("/".join(path[:i + 1]))
        node = node[key]
    return node


def get_response_value(config: Mapping[str, Any], path: list[str]) -> Any:
    """GetConfiguration's ``value``: a map as is, a leaf wrapped as ``{last key: leaf}``."""
    value = lookup(config, path)
    if path and not isinstance(value, Mapping):
        return {path[-1]: value}
    return value


def paths_overlap(a: list[str], b: list[str]) -> bool:
    """True if one key path is a prefix of the other (a change at one concerns the other)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _component(call: Call, req: dict[str, Any]) -> str:
    return string(req, "componentName", required=False,
                  allowed="a component name (absent: the caller)") or call.component


def _config_of(call: Call, name: str) -> dict[str, Any]:
    """What the caller may see of ``name``'s configuration."""
    config = call.core.get_configuration(name)
    if config is None:
        raise ResourceNotFoundError(f"componentName: component {name!r} does not exist on "
                                    "this core", resource_type="Component", resource_name=name)
    return readable_configuration(call.component, name, call.core.component_type(name), config)


def _refuse(call: Call, what: str, why: str) -> UnauthorizedError:
    """An UnauthorizedError, logged (one line, naming the caller) for whoever watches the core."""
    log.warning("%s: %s refused: %s", call.component, call.operation.rpartition("#")[2],
                f"{what}: {why}".replace("\n", "\\n"))
    return UnauthorizedError(f"{what}: {why}")


async def get_configuration(call: Call, req: dict[str, Any]) -> Reply:
    name = _component(call, req)
    path = key_path(req)
    config = _config_of(call, name)
    try:
        value = get_response_value(config, path)
    except KeyError as e:
        raise ResourceNotFoundError(
            f"keyPath: {path!r} not found in the configuration of {name} (no key "
            f"{e.args[0]!r})", resource_type="KeyPath", resource_name="/".join(path)) from None
    return Reply("aws.greengrass#GetConfigurationResponse",
                 {"componentName": name, "value": value})


async def update_configuration(call: Call, req: dict[str, Any]) -> Reply:
    other = req.get("componentName")
    if other is not None and other != call.component:
        raise _refuse(call, "componentName", f"{call.component} may update only its own "
                      f"configuration, not {other!r}")
    path = key_path(req)
    if "valueToMerge" not in req:
        raise invalid("valueToMerge", "is required", None,
                      "a JSON value (an object merges, anything else replaces the key)")
    value = req["valueToMerge"]
    ts = req.get("timestamp")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float)
                           or not math.isfinite(ts) or ts < 0):
        raise invalid("timestamp", "must be a non-negative number", ts,
                      "seconds since the epoch (the SDK sends datetime.timestamp())")
    if not path and not isinstance(value, Mapping):
        raise invalid("valueToMerge", "must be an object when keyPath is empty", value,
                      "a JSON object merged into the whole configuration")
    check_size(len(json.dumps(value)), "valueToMerge", call.max_payload)
    hit = reached_key(call.core.protected_configuration(call.component), path, value)
    if hit is not None:
        raise _refuse(call, f"keyPath {format_pointer(path) or '/'!r}",
                      f"{hit.pointer or '/'} of {call.component} cannot be changed over IPC "
                      f"because {hit.reason}; only a deployment can change it")
    await call.core.update_configuration(call.component, path, value)
    return Reply("aws.greengrass#UpdateConfigurationResponse", {})


async def subscribe_to_configuration_update(call: Call, req: dict[str, Any]) -> Reply:
    name = _component(call, req)
    path = key_path(req)
    _config_of(call, name)

    def on_change(changed: list[str]) -> None:
        if paths_overlap(path, changed):
            call.emit(CONFIGURATION_UPDATE_EVENTS, {
                "configurationUpdateEvent": {"componentName": name, "keyPath": list(changed)}})

    unsubscribe = call.core.subscribe_configuration(name, on_change)
    return Reply("aws.greengrass#SubscribeToConfigurationUpdateResponse", {}, close=unsubscribe)


async def update_state(call: Call, req: dict[str, Any]) -> Reply:
    state = required_string(req, "state", allowed=" or ".join(REPORTED_STATES))
    if state not in REPORTED_STATES:
        raise invalid("state", "unknown state", state, " or ".join(REPORTED_STATES))
    call.core.report_state(call.component, state)
    return Reply("aws.greengrass#UpdateStateResponse", {})
