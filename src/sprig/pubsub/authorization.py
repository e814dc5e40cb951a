"""IPC authorization by ``accessControl`` policies, as Greengrass V2 evaluates them (ref §7.4).

A component's configuration may hold::

    accessControl:
      aws.greengrass.ipc.pubsub:
        "com.example.Pub:pubsub:1":
          policyDescription: ...
          operations: ["aws.greengrass#PublishToTopic"]      # or "*"
          resources: ["sensors/*", "status"]

A request (component, service, operation, resource) is allowed when some policy of that service
lists the operation (or ``*``) and has a resource pattern matching the resource. Patterns:

* every service: ``*`` matches any run of characters, ``/`` included; ``${*}``, ``${?}``, ``${$}``
  are a literal ``*``, ``?``, ``$``; ``?`` is *not* a wildcard.
* ``aws.greengrass.ipc.pubsub``: ``+`` and ``#`` are literal characters (so a component allowed to
  subscribe to ``a/+`` may subscribe to exactly that filter, not to ``a/#``).
* ``aws.greengrass.ipc.mqttproxy``: ``+`` (a whole level) matches one level and ``#`` (the whole
  last level) matches the rest, parent level included, as MQTT does; misplaced ones are literal.
  Sprig adds one safety rule: a policy ``+`` never matches a resource level that is itself ``#``
  (a broader subscription than the policy grants).

Everything here is pure; the IPC servers call :func:`check` and report the error to the client.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sprig.errors import SprigError, ValidationError
from sprig.suggest import did_you_mean


class IpcService(enum.StrEnum):
    PUBSUB = "aws.greengrass.ipc.pubsub"
    MQTT_PROXY = "aws.greengrass.ipc.mqttproxy"
    SECRET_MANAGER = "aws.greengrass.SecretManager"


PUBLISH_TO_TOPIC = "aws.greengrass#PublishToTopic"
SUBSCRIBE_TO_TOPIC = "aws.greengrass#SubscribeToTopic"
PUBLISH_TO_IOT_CORE = "aws.greengrass#PublishToIoTCore"
SUBSCRIBE_TO_IOT_CORE = "aws.greengrass#SubscribeToIoTCore"
GET_SECRET_VALUE = "aws.greengrass#GetSecretValue"

def _ops(*names: str) -> tuple[str, ...]:
    return tuple(f"aws.greengrass#{n}" for n in names)


#: Every service an ``accessControl`` policy may name, with the operations it accepts: the
#: nucleus's registry (``AuthorizationHandler``: ``componentToOperationsMap``); ``*`` is allowed
#: too. A policy naming anything else would grant nothing, silently, so a deployment refuses it.
KNOWN_OPERATIONS: dict[str, tuple[str, ...]] = {
    IpcService.PUBSUB: (PUBLISH_TO_TOPIC, SUBSCRIBE_TO_TOPIC),
    IpcService.MQTT_PROXY: (PUBLISH_TO_IOT_CORE, SUBSCRIBE_TO_IOT_CORE),
    IpcService.SECRET_MANAGER: (GET_SECRET_VALUE,),
    "aws.greengrass.ShadowManager": _ops("GetThingShadow", "UpdateThingShadow",
                                         "DeleteThingShadow", "ListNamedShadowsForThing"),
    "aws.greengrass.Cli": _ops("GetComponentDetails", "ListComponents", "RestartComponent",
                               "StopComponent", "CreateLocalDeployment",
                               "GetLocalDeploymentStatus", "ListLocalDeployments",
                               "CreateDebugPassword"),
    "aws.greengrass.ipc.lifecycle": _ops("PauseComponent", "ResumeComponent"),
    "aws.greengrass.ipc.componentmetric": _ops("PutComponentMetric"),
    "aws.greengrass.clientdevices.Auth": _ops("SubscribeToCertificateUpdates",
                                              "VerifyClientDeviceIdentity",
                                              "GetClientDeviceAuthToken",
                                              "AuthorizeClientDeviceAction"),
    "aws.greengrass.TokenExchangeService": ("getCredentials",),
}

POLICY_KEYS = ("policyDescription", "operations", "resources")
_ESCAPE_ALLOWED = "${*}, ${$} or ${?} (a literal *, $ or ?); '?' alone is not a wildcard"


class AuthorizationError(SprigError):
    """No policy allows the request; the message names the component, operation and resource."""

    def __init__(self, component: str, service: str, operation: str, resource: str) -> None:
        self.component = component
        self.service = service
        self.operation = operation
        self.resource = resource
        super().__init__(
            f"Principal {component} is not authorized to perform {service}:{operation} on "
            f"resource {resource} (add an accessControl policy for {service} that lists "
            f"{operation} and a matching resource to the component's configuration)")


# Pattern tokens: a literal character, or one of the three wildcards.
_GLOB = "\x00*"
_PLUS = "\x00+"
_HASH = "\x00#"
_ESCAPES = {"${*}": "*", "${?}": "?", "${$}": "$"}


@lru_cache(maxsize=4096)
def _tokens(pattern: str, mqtt: bool) -> tuple[str, ...]:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        esc = pattern[i:i + 4]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 4
            continue
        c = pattern[i]
        whole_level = (i == 0 or pattern[i - 1] == "/") and (i + 1 == n or pattern[i + 1] == "/")
        if c == "*":
            out.append(_GLOB)
        elif mqtt and c == "+" and whole_level:
            out.append(_PLUS)
        elif mqtt and c == "#" and whole_level and i + 1 == n:
            out.append(_HASH)
        else:
            out.append(c)
        i += 1
    return tuple(out)


def resource_matches(pattern: str, resource: str, *, mqtt: bool) -> bool:
    """Does the policy resource ``pattern`` match ``resource``? (see the module docstring)."""
    if pattern == resource:
        return True
    toks = _tokens(pattern, mqtt)
    n = len(resource)
    memo: dict[tuple[int, int], bool] = {}

    def m(p: int, t: int) -> bool:
        key = (p, t)
        if key in memo:
            return memo[key]
        result: bool
        if p == len(toks):
            result = t == n
        else:
            tok = toks[p]
            if tok == _GLOB:
                result = any(m(p + 1, k) for k in range(t, n + 1))
            elif tok == _PLUS:
                end = resource.find("/", t)
                end = n if end < 0 else end
                result = resource[t:end] != "#" and m(p + 1, end)
            elif tok == _HASH:
                result = True
            elif tok == "/" and p + 2 == len(toks) and toks[p + 1] == _HASH and t == n:
                result = True          # 'a/#' also matches 'a' (the parent level)
            else:
                result = t < n and resource[t] == tok and m(p + 1, t + 1)
        memo[key] = result
        return result

    return m(0, 0)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def authorize(policies: Mapping[str, Any] | None, service: str, operation: str,
              resource: str) -> bool:
    """True if the component's ``accessControl`` config allows ``operation`` on ``resource``."""
    if not policies:
        return False
    by_id = policies.get(service)
    if not isinstance(by_id, Mapping):
        return False
    mqtt = service == IpcService.MQTT_PROXY
    for policy in by_id.values():
        if not isinstance(policy, Mapping):
            continue
        ops = _as_list(policy.get("operations"))
        if operation not in ops and "*" not in ops:
            continue
        if any(resource_matches(p, resource, mqtt=mqtt)
               for p in _as_list(policy.get("resources"))):
            return True
    return False


def check(component: str, policies: Mapping[str, Any] | None, service: str, operation: str,
          resource: str) -> None:
    """Raise :class:`AuthorizationError` unless :func:`authorize` allows the request."""
    if not authorize(policies, service, operation, resource):
        raise AuthorizationError(component, service, operation, resource)


def validate_access_control(config: Any, *, path: str = "accessControl",
                            source: str | None = None) -> None:
    """Check an ``accessControl`` block at deployment, as the nucleus checks it when it loads
    policies (``AuthorizationHandler.validateOperations``, ``AuthorizationModule
    .validateResource``) — but refusing, where the nucleus only logs and drops the policy: a
    typo'd service or operation would otherwise deploy and then deny at run time.

    Refused, with "did you mean" for a near miss: a service that takes no policies, an operation
    that service does not have, a policy key other than policyDescription, operations and
    resources, an empty resource, an invalid ``${…}`` escape or a bare ``?``.
    """
    def bad(where: str, msg: str, value: Any, allowed: str) -> ValidationError:
        return ValidationError(where, msg, value=value, allowed=allowed, source=source,
                               has_value=True)

    if config is None:
        return
    if not isinstance(config, Mapping):
        raise bad(path, "must be an object keyed by IPC service", config,
                  "e.g. {aws.greengrass.ipc.pubsub: {<policyId>: {...}}}")
    for service, by_id in config.items():
        where = f"{path}.{service}"
        known = KNOWN_OPERATIONS.get(service)
        if known is None:
            raise bad(where, "is not a service that takes authorization policies"
                      + did_you_mean(str(service), KNOWN_OPERATIONS), service,
                      ", ".join(KNOWN_OPERATIONS))
        if not isinstance(by_id, Mapping):
            raise bad(where, "must be an object keyed by policy id", by_id,
                      "{<policyId>: {operations: [...], resources: [...]}}")
        for pid, policy in by_id.items():
            pwhere = f"{where}.{pid}"
            if not isinstance(policy, Mapping):
                raise bad(pwhere, "must be an object", policy,
                          "{policyDescription, operations, resources}")
            for key in policy:
                if key not in POLICY_KEYS:
                    raise bad(f"{pwhere}.{key}", "unknown key"
                              + did_you_mean(str(key), POLICY_KEYS), key,
                              ", ".join(POLICY_KEYS))
            for key in ("operations", "resources"):
                v = policy.get(key)
                if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                    raise bad(f"{pwhere}.{key}", "must be a non-empty list of strings", v,
                              "e.g. [\"*\"]")
            for op in policy["operations"]:
                if op != "*" and op not in known:
                    raise bad(f"{pwhere}.operations", f"unknown operation for {service}"
                              + did_you_mean(op, known), op, ", ".join((*known, "*")))
            for resource in policy["resources"]:
                problem = resource_problem(resource)
                if problem is not None:
                    raise bad(f"{pwhere}.resources", problem, resource, _ESCAPE_ALLOWED)


def resource_problem(resource: str) -> str | None:
    """Why the nucleus refuses a policy resource (``AuthorizationModule.validateResource``), or
    None: it is empty, holds a ``${`` that is not ``${*}``, ``${$}`` or ``${?}``, or a bare
    ``?``."""
    if not resource:
        return "Resource cannot be empty"
    i = 0
    while i < len(resource):
        if resource.startswith("${", i):
            if resource[i:i + 4] not in _ESCAPES:
                return ("Resource contains an invalid escape sequence. You can use ${*}, ${$}, "
                        "or ${?}")
            i += 4
            continue
        if resource[i] == "?":
            return ("Resource contains invalid character: '?'. Use an escape sequence: ${?}. "
                    "The '?' character isn't supported as a wildcard")
        i += 1
    return None
