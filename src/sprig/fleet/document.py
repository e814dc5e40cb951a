"""The fleet deployment document: Greengrass's, as the nucleus receives it from the cloud.

::

    {"deploymentId": "4b1f...", "deploymentName": "line-1 rollout",
     "configurationArn":
         "arn:aws:greengrass:us-east-1:000000000000:configuration:thinggroup/line-1:3",
     "creationTimestamp": 1764750000000,
     "components": {"com.example.Hello": {"version": "1.0.0",
         "configurationUpdate": {"merge": {"greeting": "hi"}, "reset": ["/old"]},
         "runWith": {"posixUser": "app:app",
                     "systemResourceLimits": {"memory": 102400, "cpus": 0.5}}}},
     "failureHandlingPolicy": "ROLLBACK",
     "componentUpdatePolicy": {"timeout": 60, "action": "NOTIFY_COMPONENTS"},
     "configurationValidationPolicy": {"timeout": 30},
     "requiredCapabilities": ["LINUX_RESOURCE_LIMITS"]}

The CreateDeployment API spellings are accepted too (``componentVersion``; ``merge`` as a
serialized JSON string; ``timeoutInSeconds``), so a document written for AWS works unchanged.
Anything else is refused, naming the field, the value and what is allowed: a device that ignored
a key it does not understand would run something other than what the operator asked for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sprig.config.update import ConfigUpdate, parse_api_configuration_update
from sprig.deployment.request import DO_NOTHING, ROLLBACK, DeploymentRequest, UpdatePolicy
from sprig.errors import ValidationError
from sprig.fleet.topics import Target, target_of_configuration_arn
from sprig.ipc.notices import DEFAULT_UPDATE_TIMEOUT_S, NOTIFY_COMPONENTS, UPDATE_ACTIONS
from sprig.recipe._semver import is_strict_version
from sprig.settings import parse_posix_user

#: IoT job ids (a fleet deployment is a job): ``[a-zA-Z0-9_-]+``, at most 64 characters.
ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: Component names: Greengrass allows 1-128 characters; these keep them file and topic safe.
COMPONENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The capabilities Sprig has (the nucleus's names). LARGE_CONFIGURATION means "fetch the
#: document from the cloud", which has no meaning without the Greengrass service.
CAPABILITIES = frozenset({"LINUX_RESOURCE_LIMITS"})
#: configurationValidationPolicy.timeoutInSeconds of a cloud deployment when the document does
#: not say (the CreateDeployment API's default; a local deployment's is the nucleus's 20 s).
DEFAULT_VALIDATION_TIMEOUT_S = 30

_KEYS = ("deploymentId", "deploymentName", "configurationArn", "creationTimestamp",
         "components", "failureHandlingPolicy", "componentUpdatePolicy",
         "configurationValidationPolicy", "requiredCapabilities")
_COMPONENT_KEYS = ("version", "componentVersion", "configurationUpdate", "runWith")
_RUN_WITH_KEYS = ("posixUser", "systemResourceLimits")


@dataclass(frozen=True)
class ComponentSpec:
    version: str
    configuration_update: ConfigUpdate | None = None
    posix_user: str | None = None
    limits: Mapping[str, Any] | None = None   # {"memory": KB, "cpus": float}


@dataclass(frozen=True)
class FleetDeployment:
    deployment_id: str
    configuration_arn: str
    target: Target
    creation_timestamp: int
    components: Mapping[str, ComponentSpec]
    failure_handling: str = ROLLBACK
    update_action: str = "NOTIFY_COMPONENTS"
    update_timeout_s: int = DEFAULT_UPDATE_TIMEOUT_S
    validation_timeout_s: int = DEFAULT_VALIDATION_TIMEOUT_S
    name: str | None = None
    required_capabilities: tuple[str, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def versions(self) -> dict[str, str]:
        return {n: c.version for n, c in self.components.items()}

    def request(self, versions: Mapping[str, str], remove: list[str]) -> DeploymentRequest:
        """The local deployment that makes the device run ``versions`` (every target's roots):
        this document's configuration updates, run-as users and limits, its failure policy."""
        return DeploymentRequest(
            merge=dict(versions), remove=tuple(sorted(remove)),
            config_updates={n: c.configuration_update for n, c in self.components.items()
                            if c.configuration_update is not None
                            and not c.configuration_update.is_noop},
            run_with={n: {"posixUser": c.posix_user} for n, c in self.components.items()
                      if c.posix_user is not None},
            system_limits={n: dict(c.limits) for n, c in self.components.items() if c.limits},
            failure_handling=self.failure_handling,
            # Components subscribed to updates hear of it first, as on a cloud deployment.
            update_policy=UpdatePolicy(self.update_action, self.update_timeout_s),
            validation_timeout_s=self.validation_timeout_s)


def parse_document(doc: object, source: str = "deployment document") -> FleetDeployment:
    """Validate a deployment document (Greengrass's device-side shape or the API's)."""
    if not isinstance(doc, Mapping):
        raise ValidationError("", "must be a JSON object", value=doc, source=source,
                              allowed="a Greengrass deployment document", has_value=True)
    unknown = sorted(str(k) for k in doc if k not in _KEYS)
    if unknown:
        raise ValidationError(unknown[0], "unknown key", source=source,
                              allowed=", ".join(_KEYS))
    dep_id = doc.get("deploymentId")
    if not isinstance(dep_id, str) or not ID_RE.fullmatch(dep_id):
        raise ValidationError("deploymentId", "must be an id", value=dep_id, source=source,
                              allowed="1-64 characters from a-z A-Z 0-9 _ -", has_value=True)
    arn = doc.get("configurationArn")
    target = target_of_configuration_arn(arn)
    ts = doc.get("creationTimestamp")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise ValidationError("creationTimestamp", "must be milliseconds since the epoch",
                              value=ts, source=source, allowed="an integer >= 0",
                              has_value=True)
    name = doc.get("deploymentName")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 256):
        raise ValidationError("deploymentName", "must be a string of 1-256 characters",
                              value=name, source=source, allowed="a name")
    raw = doc.get("components")
    if not isinstance(raw, Mapping):
        raise ValidationError("components", "must be an object keyed by component name",
                              value=raw, source=source, has_value=True,
                              allowed='{"com.example.App": {"version": "1.0.0"}}')
    components = {str(n): _component(n, c, source) for n, c in raw.items()}
    policy = doc.get("failureHandlingPolicy", ROLLBACK)
    if policy not in (ROLLBACK, DO_NOTHING):
        raise ValidationError("failureHandlingPolicy", "unknown policy", value=policy,
                              source=source, allowed="ROLLBACK (default), DO_NOTHING")
    action, update_timeout = _update_policy(doc.get("componentUpdatePolicy"), source)
    validation_timeout = _timeout(doc.get("configurationValidationPolicy"),
                                  "configurationValidationPolicy", DEFAULT_VALIDATION_TIMEOUT_S,
                                  ("timeout", "timeoutInSeconds"), source)
    caps = doc.get("requiredCapabilities") or []
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ValidationError("requiredCapabilities", "must be a list of names", value=caps,
                              source=source, allowed=", ".join(sorted(CAPABILITIES)))
    return FleetDeployment(
        deployment_id=dep_id, configuration_arn=str(arn), target=target,
        creation_timestamp=ts, components=components, failure_handling=str(policy),
        update_action=action, update_timeout_s=update_timeout,
        validation_timeout_s=validation_timeout, name=name,
        required_capabilities=tuple(caps), document=json.loads(json.dumps(doc)))


def missing_capabilities(dep: FleetDeployment) -> list[str]:
    return [c for c in dep.required_capabilities if c not in CAPABILITIES]


def _component(name: object, value: object, source: str) -> ComponentSpec:
    path = f"components.{name}"
    if not isinstance(name, str) or not COMPONENT_RE.fullmatch(name):
        raise ValidationError("components", "invalid component name", value=name,
                              source=source, has_value=True,
                              allowed="1-128 characters from A-Z a-z 0-9 . _ -")
    if not isinstance(value, Mapping):
        raise ValidationError(path, "must be an object", value=value, source=source,
                              allowed='{"version": "1.0.0", "configurationUpdate": {...}, '
                              '"runWith": {...}}', has_value=True)
    unknown = sorted(str(k) for k in value if k not in _COMPONENT_KEYS)
    if unknown:
        raise ValidationError(f"{path}.{unknown[0]}", "unknown key", source=source,
                              allowed=", ".join(_COMPONENT_KEYS))
    version = value.get("version", value.get("componentVersion"))
    if not isinstance(version, str) or not is_strict_version(version):
        raise ValidationError(f"{path}.version", "must be a component version", value=version,
                              source=source, allowed="a semantic version such as 1.0.0",
                              has_value=True)
    update = None
    if value.get("configurationUpdate") is not None:
        raw = value["configurationUpdate"]
        if isinstance(raw, Mapping) and isinstance(raw.get("merge"), Mapping):
            # The device-side document carries ``merge`` as an object, the API as a string.
            raw = {**raw, "merge": json.dumps(raw["merge"])}
        update = parse_api_configuration_update(dict(raw) if isinstance(raw, Mapping) else raw,
                                                path=f"{path}.configurationUpdate",
                                                source=source)
    user, limits = None, None
    run_with = value.get("runWith")
    if run_with is not None:
        if not isinstance(run_with, Mapping):
            raise ValidationError(f"{path}.runWith", "must be an object", value=run_with,
                                  source=source, allowed="{posixUser, systemResourceLimits}",
                                  has_value=True)
        unknown = sorted(str(k) for k in run_with if k not in _RUN_WITH_KEYS)
        if unknown:
            raise ValidationError(f"{path}.runWith.{unknown[0]}", "unknown or unsupported key "
                                  "(windowsUser has no meaning on Linux)", source=source,
                                  allowed=", ".join(_RUN_WITH_KEYS))
        if run_with.get("posixUser") is not None:
            parse_posix_user(run_with["posixUser"], f"{path}.runWith.posixUser", source)
            user = str(run_with["posixUser"])
        if run_with.get("systemResourceLimits") is not None:
            limits = _limits(run_with["systemResourceLimits"],
                             f"{path}.runWith.systemResourceLimits", source)
    return ComponentSpec(version, update, user, limits)


def _limits(value: object, path: str, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value) - {"memory", "cpus"}:
        raise ValidationError(path, "must be {memory, cpus}", value=value, source=source,
                              allowed='{"memory": 102400, "cpus": 0.5} (memory in KB)',
                              has_value=True)
    memory, cpus = value.get("memory"), value.get("cpus")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int)
                               or memory < 1024):
        raise ValidationError(f"{path}.memory", "must be a whole number of KB >= 1024",
                              value=memory, source=source, allowed="KB >= 1024")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int | float)
                             or cpus <= 0):
        raise ValidationError(f"{path}.cpus", "must be a positive number", value=cpus,
                              source=source, allowed="CPU cores > 0, e.g. 0.5")
    return {k: v for k, v in (("memory", memory), ("cpus", cpus)) if v is not None}


def _update_policy(value: object, source: str) -> tuple[str, int]:
    if value is None:
        return NOTIFY_COMPONENTS, DEFAULT_UPDATE_TIMEOUT_S
    timeout = _timeout(value, "componentUpdatePolicy", DEFAULT_UPDATE_TIMEOUT_S,
                       ("timeout", "timeoutInSeconds", "action"), source)
    assert isinstance(value, Mapping)
    action = value.get("action", NOTIFY_COMPONENTS)
    if action not in UPDATE_ACTIONS:
        raise ValidationError("componentUpdatePolicy.action", "unknown action", value=action,
                              source=source, allowed=", ".join(UPDATE_ACTIONS))
    return str(action), timeout


def _timeout(value: object, path: str, default: int, keys: tuple[str, ...],
             source: str) -> int:
    if value is None:
        return default
    if not isinstance(value, Mapping):
        raise ValidationError(path, "must be an object", value=value, source=source,
                              allowed="{" + ", ".join(keys) + "}", has_value=True)
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise ValidationError(f"{path}.{unknown[0]}", "unknown key", source=source,
                              allowed=", ".join(keys))
    t = value.get("timeout", value.get("timeoutInSeconds", default))
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 86_400:
        raise ValidationError(f"{path}.timeout", "must be seconds", value=t, source=source,
                              allowed=f"an integer from 1 to 86400 (default {default})",
                              has_value=True)
    return t
