"""A deployment request, as ``sprig deployment create`` (and the Greengrass CLI) states it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sprig.config.update import ConfigUpdate, parse_update_document
from sprig.errors import ValidationError
from sprig.ipc.notices import (
    DEFAULT_UPDATE_TIMEOUT_S,
    DEFAULT_VALIDATION_TIMEOUT_S,
    SKIP_NOTIFY_COMPONENTS,
    UPDATE_ACTIONS,
)
from sprig.settings import parse_posix_user

ROLLBACK = "ROLLBACK"
DO_NOTHING = "DO_NOTHING"
#: Written by the core into a stored deployment: what its recipes held that Sprig ignored
#: (unknown keys). Not part of the request: read back, it is skipped.
WARNINGS = "warnings"
UPDATE_POLICY = "componentUpdatePolicy"
VALIDATION_POLICY = "configurationValidationPolicy"
_KEYS = {"merge", "remove", "configurationUpdate", "runWith", "systemLimits",
         "failureHandlingPolicy", UPDATE_POLICY, VALIDATION_POLICY, WARNINGS}
_MAX_TIMEOUT_S = 2147483647


@dataclass(frozen=True)
class UpdatePolicy:
    """``componentUpdatePolicy``: notify subscribed components first (and wait up to
    ``timeout_s`` for deferrals), or not. A local deployment skips it unless asked, as the
    nucleus's local deployments always do."""

    action: str = SKIP_NOTIFY_COMPONENTS
    timeout_s: int = DEFAULT_UPDATE_TIMEOUT_S

    def to_document(self) -> dict[str, Any]:
        return {"action": self.action, "timeoutInSeconds": self.timeout_s}



@dataclass(frozen=True)
class DeploymentRequest:
    """What to change: versions to add or change, components to remove, configuration updates,
    run-as users and resource limits per component, and what to do on failure."""

    merge: dict[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    config_updates: dict[str, ConfigUpdate] = field(default_factory=dict)
    run_with: dict[str, dict[str, Any]] = field(default_factory=dict)
    system_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure_handling: str = ROLLBACK
    update_policy: UpdatePolicy = UpdatePolicy()
    validation_timeout_s: int = DEFAULT_VALIDATION_TIMEOUT_S

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "merge": dict(self.merge),
            "remove": list(self.remove),
            "configurationUpdate": {k: u.to_document() for k, u in self.config_updates.items()},
            "runWith": self.run_with,
            "systemLimits": self.system_limits,
            "failureHandlingPolicy": self.failure_handling,
        }
        if self.update_policy != UpdatePolicy():
            doc[UPDATE_POLICY] = self.update_policy.to_document()
        if self.validation_timeout_s != DEFAULT_VALIDATION_TIMEOUT_S:
            doc[VALIDATION_POLICY] = {"timeoutInSeconds": self.validation_timeout_s}
        return doc

    @classmethod
    def from_document(cls, doc: object, source: str = "deployment") -> DeploymentRequest:
        if not isinstance(doc, Mapping):
            raise ValidationError("", "a deployment must be an object", value=doc,
                                  source=source, allowed="a JSON object")
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise ValidationError(unknown[0], "unknown key", source=source,
                                  allowed=", ".join(sorted(_KEYS)))
        merge = doc.get("merge") or {}
        if not isinstance(merge, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in merge.items()
        ):
            raise ValidationError("merge", "must map component names to versions", value=merge,
                                  source=source, allowed='{"name": "1.0.0"}')
        remove = doc.get("remove") or []
        if not isinstance(remove, list) or not all(isinstance(r, str) for r in remove):
            raise ValidationError("remove", "must be a list of component names", value=remove,
                                  source=source, allowed='["name", ...]')
        both = sorted(set(merge) & set(remove))
        if both:
            raise ValidationError("remove", "a component cannot be merged and removed at once",
                                  value=both[0], source=source,
                                  allowed="each name in merge or in remove, not both")
        updates = parse_update_document(doc.get("configurationUpdate") or {},
                                        f"{source}: configurationUpdate")
        run_with: dict[str, dict[str, Any]] = {}
        for name, value in (doc.get("runWith") or {}).items():
            path = f"runWith.{name}"
            if not isinstance(value, Mapping) or set(value) - {"posixUser"}:
                raise ValidationError(path, "must be {posixUser: user[:group]}", value=value,
                                      source=source, allowed="posixUser=user[:group]")
            parse_posix_user(value.get("posixUser"), f"{path}.posixUser", source)
            run_with[name] = dict(value)
        limits: dict[str, dict[str, Any]] = {}
        for name, value in (doc.get("systemLimits") or {}).items():
            path = f"systemLimits.{name}"
            if not isinstance(value, Mapping) or set(value) - {"cpus", "memory"}:
                raise ValidationError(path, "must be {cpus, memory}", value=value, source=source,
                                      allowed='{"cpus": 0.5, "memory": 102400} (memory in KB)')
            cpus, memory = value.get("cpus"), value.get("memory")
            if cpus is not None and (not isinstance(cpus, (int, float)) or isinstance(cpus, bool)
                                     or cpus <= 0):
                raise ValidationError(f"{path}.cpus", "must be a positive number", value=cpus,
                                      source=source, allowed="CPU cores > 0, e.g. 0.5")
            if memory is not None and (not isinstance(memory, int) or isinstance(memory, bool)
                                       or memory < 1024):
                raise ValidationError(f"{path}.memory", "must be a whole number of KB >= 1024",
                                      value=memory, source=source, allowed="KB >= 1024")
            limits[name] = dict(value)
        policy = doc.get("failureHandlingPolicy", ROLLBACK)
        if policy not in (ROLLBACK, DO_NOTHING):
            raise ValidationError("failureHandlingPolicy", "unknown failure handling policy",
                                  value=policy, source=source, allowed="ROLLBACK, DO_NOTHING")
        update_policy = _update_policy(doc.get(UPDATE_POLICY), source)
        validation = _policy_object(doc.get(VALIDATION_POLICY), VALIDATION_POLICY, (), source)
        validation_timeout = _timeout(validation, VALIDATION_POLICY,
                                      DEFAULT_VALIDATION_TIMEOUT_S, source)
        return cls(dict(merge), tuple(remove), updates, run_with, limits, str(policy),
                   update_policy, validation_timeout)


def _policy_object(value: object, name: str, extra: tuple[str, ...],
                   source: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    keys = ("timeoutInSeconds", "timeout", *extra)
    if not isinstance(value, Mapping):
        raise ValidationError(name, "must be an object", value=value, source=source,
                              allowed="{" + ", ".join(keys) + "}")
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise ValidationError(f"{name}.{unknown[0]}", "unknown key", source=source,
                              allowed=", ".join(keys))
    return value


def _timeout(value: Mapping[str, Any], name: str, default: int, source: str) -> int:
    """``timeoutInSeconds`` (the API's word) or ``timeout`` (the device document's)."""
    if "timeoutInSeconds" in value and "timeout" in value:
        raise ValidationError(f"{name}.timeout", "give timeoutInSeconds or timeout, not both",
                              value=value["timeout"], source=source,
                              allowed="one of timeoutInSeconds, timeout")
    key = "timeoutInSeconds" if "timeoutInSeconds" in value else "timeout"
    t = value.get(key, default)
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= _MAX_TIMEOUT_S:
        raise ValidationError(f"{name}.{key}", "must be a whole number of seconds", value=t,
                              source=source, allowed=f"0 to {_MAX_TIMEOUT_S} (default {default})")
    return t


def _update_policy(value: object, source: str) -> UpdatePolicy:
    policy = _policy_object(value, UPDATE_POLICY, ("action",), source)
    action = policy.get("action", SKIP_NOTIFY_COMPONENTS)
    if action not in UPDATE_ACTIONS:
        raise ValidationError(f"{UPDATE_POLICY}.action", "unknown action", value=action,
                              source=source, allowed=", ".join(UPDATE_ACTIONS))
    return UpdatePolicy(str(action), _timeout(policy, UPDATE_POLICY,
                                              DEFAULT_UPDATE_TIMEOUT_S, source))
