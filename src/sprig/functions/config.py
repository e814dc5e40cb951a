"""A Lambda component's configuration: the Greengrass keys, their defaults and their ranges.

The keys are those of the recipe AWS generates when importing a Lambda function (reference
§2.1-2.2); a deployment can override any of them. :class:`Key` and :data:`SUBKEYS` are the one
list of what the parser reads. Inside the objects the Lambda manager owns (``containerParams``,
``lambdaExecutionParameters``, each volume, device and event-source entry) any other key is an
error naming the nearest known one: a typo such as ``containerParams.memorySizeInKB`` would
otherwise quietly become the default. At the top level the configuration is also the function's
own (it may keep keys there and read them over IPC), so a deployment refuses only a key that is
a near miss of a Lambda key or an import-API name used as one (``timeoutInSecond``,
``isolationMode``): ``strict`` parsing; the running core ignores the function's own keys. On a
device numbers
may arrive as floats or strings (``3.0``, ``"3"``), so every number is read leniently but must
be a whole number inside the range AWS validates (reference §1.4). The dataclass itself accepts
any value, so tests can build configurations below the minimums (e.g. a 0.2 s idle time)
through its constructor.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

from sprig.errors import ValidationError
from sprig.launcher.spec import ContainerMode
from sprig.suggest import did_you_mean

INT_MAX = 2147483647
E = TypeVar("E", bound=enum.StrEnum)


class PayloadEncoding(enum.StrEnum):
    JSON = "json"
    BINARY = "binary"


class EventSourceType(enum.StrEnum):
    PUB_SUB = "PUB_SUB"
    IOT_CORE = "IOT_CORE"


@dataclass(frozen=True)
class VolumeMount:
    source_path: str
    destination_path: str
    writable: bool = False
    add_group_owner: bool = False


@dataclass(frozen=True)
class DeviceMount:
    path: str
    writable: bool = False
    add_group_owner: bool = False


@dataclass(frozen=True)
class EventSource:
    topic: str
    type: EventSourceType = EventSourceType.PUB_SUB


@dataclass(frozen=True)
class LambdaConfig:
    """Everything the Lambda manager needs from a function component's configuration."""

    pinned: bool = True
    timeout_s: float = 3
    max_idle_s: float = 60
    max_instances: int = 100
    #: minInstancesCount (a Sprig key, Lambda's provisioned concurrency): on-demand workers
    #: started before any invocation and kept through idle reaping
    min_instances: int = 0
    max_queue_size: int = 1000
    status_timeout_s: float = 60
    encoding: PayloadEncoding = PayloadEncoding.JSON
    container_mode: ContainerMode = ContainerMode.GREENGRASS_CONTAINER
    memory_kb: int = 16384
    mount_ro_sysfs: bool = False
    #: containerParams.ephemeralStorageSize (KB, a Sprig key): the worker's /tmp and work
    #: directory are private in-memory file systems of at most this size each (None: /tmp is
    #: bounded by the memory limit, the work directory is the component's, on the disk)
    ephemeral_storage_kb: int | None = None
    volumes: tuple[VolumeMount, ...] = ()
    devices: tuple[DeviceMount, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    event_sources: tuple[EventSource, ...] = ()

    @classmethod
    def from_configuration(cls, cfg: Mapping[str, Any], source: str | None = None,
                           *, strict: bool = False) -> LambdaConfig:
        """Read the Greengrass keys (missing ones take AWS's defaults). ``strict`` (a
        deployment's check) also refuses a top-level key that looks like a mistaken Lambda key.

        Raises:
            ValidationError: naming the key, the value and what is allowed.
        """
        try:
            return _parse(cfg, strict)
        except ValidationError as e:
            return _raise(e, source)

    def needs_restart(self, new: LambdaConfig) -> bool:
        """True if running workers must be replaced to honour ``new``.

        Queue and pool sizes, timeouts and event sources apply to the next invocation; anything
        a worker was started with (environment, sandbox, encoding, pinned) needs new workers.
        """
        keep = ("timeout_s", "max_idle_s", "max_instances", "min_instances", "max_queue_size",
                "status_timeout_s", "event_sources")
        return any(getattr(self, f) != getattr(new, f)
                   for f in self.__dataclass_fields__ if f not in keep)


def _raise(e: ValidationError, source: str | None) -> LambdaConfig:
    raise e.with_source(source) if source else e


_DEFAULT = LambdaConfig()


class Key(enum.StrEnum):
    """Every top-level configuration key the Lambda manager reads: the ONE list of them.

    The parser below reads only these, and the configuration guard
    (:mod:`sprig.config.protected`) protects all of them from IPC ``UpdateConfiguration``: each
    decides isolation (``containerMode``, ``containerParams``), identity and environment
    (``lambdaExecutionParameters``), resources (pool, queue and memory sizes, timeouts) or which
    topics invoke the function (``pubsubTopics``), so only a deployment may change them.
    """

    PINNED = "pinned"
    TIMEOUT = "timeoutInSeconds"
    MAX_IDLE = "maxIdleTimeInSeconds"
    MAX_INSTANCES = "maxInstancesCount"
    MIN_INSTANCES = "minInstancesCount"
    MAX_QUEUE = "maxQueueSize"
    STATUS_TIMEOUT = "statusTimeoutInSeconds"
    ENCODING = "inputPayloadEncodingType"
    CONTAINER_MODE = "containerMode"
    CONTAINER_PARAMS = "containerParams"
    EXECUTION_PARAMETERS = "lambdaExecutionParameters"
    EVENT_SOURCES = "pubsubTopics"


#: ``containerParams.ephemeralStorageSize``: at least 1 MB (KB, as ``memorySize``).
EPHEMERAL_MIN_KB = 1024

#: Where a Lambda component's environment variables live in its configuration.
ENVIRONMENT_VARIABLES_PATH = (str(Key.EXECUTION_PARAMETERS), "EnvironmentVariables")

#: The keys the parser reads inside an object-valued :class:`Key`, and inside each entry of
#: ``containerParams.volumes`` / ``containerParams.devices`` / ``pubsubTopics``: with
#: :class:`Key`, every configuration key Sprig reads (each one's effect has a test, see
#: ``sprig/_tests/compat/test_lambda_configuration.py``).
SUBKEYS: Mapping[str, tuple[str, ...]] = {
    Key.CONTAINER_PARAMS: ("memorySize", "mountROSysfs", "ephemeralStorageSize", "volumes",
                           "devices"),
    Key.EXECUTION_PARAMETERS: (ENVIRONMENT_VARIABLES_PATH[1],),
    "containerParams.volumes.*": ("sourcePath", "destinationPath", "permission",
                                  "addGroupOwner"),
    "containerParams.devices.*": ("path", "permission", "addGroupOwner"),
    "pubsubTopics.*": ("topic", "type"),
}

#: Top-level keys of a Lambda component's configuration that are not the Lambda manager's:
#: ``accessControl`` (its IPC policies, checked by the deployment on every component).
OTHER_KEYS = ("accessControl",)

#: Import-API parameter names (``LambdaExecutionParameters``) people write into a deployment's
#: configuration, and the recipe key each one is (None: not a configuration key at all).
API_NAMES: Mapping[str, str | None] = {
    "isolationMode": str(Key.CONTAINER_MODE),
    "memorySizeInKB": "containerParams.memorySize",
    "environmentVariables": "lambdaExecutionParameters.EnvironmentVariables",
    "eventSources": str(Key.EVENT_SOURCES),
    "linuxProcessParams": f"{Key.CONTAINER_MODE} and {Key.CONTAINER_PARAMS}",
    "execArgs": None,
}


def all_keys() -> list[str]:
    """Every configuration key path the parser reads (``containerParams.memorySize`` ...)."""
    out = [str(k) for k in Key]
    for parent, keys in SUBKEYS.items():
        out.extend(f"{parent}.{k}" for k in keys)
    return out


def _check_keys(value: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
    """Refuse a key the parser does not read: it would be ignored, silently."""
    for key in value:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise ValidationError(where, "is not a Lambda configuration key Sprig reads"
                                  + did_you_mean(str(key), known), value=key,
                                  allowed=", ".join(known), has_value=True)


def _check_top_level(cfg: Mapping[str, Any]) -> None:
    """Refuse a top-level key that is a near miss of a Lambda key or an import-API name:
    the function's own keys are anything else."""
    known = (*(str(k) for k in Key), *OTHER_KEYS)
    for key in cfg:
        if key in known:
            continue
        if key in API_NAMES:
            target = API_NAMES[key]
            hint = (f" (that is the import API's name: in a configuration it is {target})"
                    if target else " (that is the import API's name: it is not configuration)")
            raise ValidationError(str(key), "is not a Lambda configuration key" + hint,
                                  value=key, allowed=", ".join(known), has_value=True)
        hint = did_you_mean(str(key), known)
        if hint:
            raise ValidationError(str(key), "is not a Lambda configuration key Sprig reads"
                                  + hint, value=key, allowed=", ".join(known) + " (other "
                                  "keys are the function's own, not near misses of these)",
                                  has_value=True)


def _parse(cfg: Mapping[str, Any], strict: bool = False) -> LambdaConfig:
    if not isinstance(cfg, Mapping):
        raise ValidationError("", "the configuration must be an object", value=cfg)
    if strict:
        _check_top_level(cfg)
    params = _mapping(cfg, Key.CONTAINER_PARAMS)
    _check_keys(params, SUBKEYS[Key.CONTAINER_PARAMS], str(Key.CONTAINER_PARAMS))
    lep = _mapping(cfg, Key.EXECUTION_PARAMETERS)
    _check_keys(lep, SUBKEYS[Key.EXECUTION_PARAMETERS], str(Key.EXECUTION_PARAMETERS))
    pinned = _bool(cfg, Key.PINNED, _DEFAULT.pinned)
    max_instances = _int(cfg, Key.MAX_INSTANCES, 100, 1)
    return LambdaConfig(
        pinned=pinned,
        timeout_s=_int(cfg, Key.TIMEOUT, 3, 1),
        max_idle_s=_int(cfg, Key.MAX_IDLE, 60, 30),
        max_instances=max_instances,
        min_instances=_min_instances(cfg, pinned, max_instances),
        max_queue_size=_int(cfg, Key.MAX_QUEUE, 1000, 1),
        status_timeout_s=_int(cfg, Key.STATUS_TIMEOUT, 60, 30),
        encoding=_enum(cfg, Key.ENCODING, PayloadEncoding, PayloadEncoding.JSON),
        container_mode=_enum(cfg, Key.CONTAINER_MODE, ContainerMode,
                             ContainerMode.GREENGRASS_CONTAINER),
        memory_kb=_int(params, "memorySize", 16384, 2048, "containerParams."),
        mount_ro_sysfs=_bool(params, "mountROSysfs", False, "containerParams."),
        ephemeral_storage_kb=(_int(params, "ephemeralStorageSize", 0, EPHEMERAL_MIN_KB,
                                   "containerParams.")
                              if params.get("ephemeralStorageSize") is not None else None),
        volumes=_volumes(params),
        devices=_devices(params),
        environment=_environment(lep),
        event_sources=_event_sources(cfg),
    )


def _min_instances(cfg: Mapping[str, Any], pinned: bool, max_instances: int) -> int:
    """``minInstancesCount``: 0 to ``maxInstancesCount``, and only for an on-demand function
    (a pinned one always keeps its one worker; a count there would mean nothing, so it is
    refused rather than ignored)."""
    key = str(Key.MIN_INSTANCES)
    value = _int(cfg, key, 0, 0)
    allowed = f"a whole number from 0 to maxInstancesCount ({max_instances})"
    if value > max_instances:
        raise ValidationError(key, "is larger than maxInstancesCount", value=cfg.get(key),
                              allowed=allowed)
    if value and pinned:
        raise ValidationError(key, "applies to on-demand functions only (pinned: false); a "
                              "pinned function always keeps its one worker started",
                              value=cfg.get(key), allowed="0 (or leave it out) when pinned "
                              "is true")
    return value


def _mapping(cfg: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = cfg.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(prefix + key, "must be an object", value=value,
                              allowed="an object (map)")
    return value


def _int(cfg: Mapping[str, Any], key: str, default: int, minimum: int, prefix: str = "") -> int:
    value = cfg.get(key)
    if value is None:
        return default
    allowed = f"a whole number from {minimum} to {INT_MAX}"
    number: float
    if isinstance(value, bool):
        raise ValidationError(prefix + key, "must be a number", value=value, allowed=allowed)
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValidationError(prefix + key, "must be a number", value=value,
                                  allowed=allowed) from None
    else:
        raise ValidationError(prefix + key, "must be a number", value=value, allowed=allowed)
    if not math.isfinite(number) or number != int(number) or not minimum <= number <= INT_MAX:
        raise ValidationError(prefix + key, "is out of range", value=value, allowed=allowed)
    return int(number)


def _bool(cfg: Mapping[str, Any], key: str, default: bool, prefix: str = "") -> bool:
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValidationError(prefix + key, "must be a boolean", value=value, allowed="true or false")


def _enum(cfg: Mapping[str, Any], key: str, kind: type[E], default: E,
          prefix: str = "") -> E:
    value = cfg.get(key)
    if value is None:
        return default
    for member in kind:
        if value == member.value:
            return member
    raise ValidationError(prefix + key, "is not a known value", value=value,
                          allowed=" or ".join(m.value for m in kind))


def _entries(params: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
    """``{"0": {...}, "1": {...}}`` (or a list) as (path, entry) pairs in index order."""
    raw = params.get(key)
    path = f"containerParams.{key}"
    if raw is None:
        return []
    if isinstance(raw, list):
        items = [(str(i), v) for i, v in enumerate(raw)]
    elif isinstance(raw, Mapping):
        items = sorted(raw.items(), key=lambda kv: (not str(kv[0]).isdigit(),
                                                     int(kv[0]) if str(kv[0]).isdigit() else 0,
                                                     str(kv[0])))
    else:
        raise ValidationError(path, "must be an object keyed by index", value=raw,
                              allowed='{"0": {...}, "1": {...}}')
    out = []
    for index, entry in items:
        if not isinstance(entry, Mapping):
            raise ValidationError(f"{path}.{index}", "must be an object", value=entry)
        _check_keys(entry, SUBKEYS[f"{path}.*"], f"{path}.{index}")
        out.append((f"{path}.{index}", entry))
    return out


def _abs_path(entry: Mapping[str, Any], key: str, path: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 4096:
        raise ValidationError(f"{path}.{key}", "must be an absolute path", value=value,
                              allowed="an absolute path of at most 4096 characters",
                              has_value=True)
    return value


def _permission(entry: Mapping[str, Any], path: str) -> bool:
    value = entry.get("permission", "ro")
    if value not in ("ro", "rw"):
        raise ValidationError(f"{path}.permission", "is not a known permission", value=value,
                              allowed="ro or rw")
    return bool(value == "rw")


def _under(path: str, root: str) -> bool:
    p = PurePosixPath(path)
    return p == PurePosixPath(root) or PurePosixPath(root) in p.parents


def _volumes(params: Mapping[str, Any]) -> tuple[VolumeMount, ...]:
    out = []
    for path, entry in _entries(params, "volumes"):
        src = _abs_path(entry, "sourcePath", path)
        dst = _abs_path(entry, "destinationPath", path)
        if _under(src, "/sys"):
            raise ValidationError(f"{path}.sourcePath", "may not mount from /sys", value=src,
                                  allowed="a path outside /sys (use mountROSysfs)")
        if _under(dst, "/proc"):
            raise ValidationError(f"{path}.destinationPath", "may not mount onto /proc",
                                  value=dst, allowed="a path outside /proc")
        out.append(VolumeMount(src, dst, _permission(entry, path),
                               _bool(entry, "addGroupOwner", False, f"{path}.")))
    return tuple(out)


def _devices(params: Mapping[str, Any]) -> tuple[DeviceMount, ...]:
    out = []
    for path, entry in _entries(params, "devices"):
        dev = _abs_path(entry, "path", path)
        if not _under(dev, "/dev") or dev == "/dev":
            raise ValidationError(f"{path}.path", "must be a device under /dev", value=dev,
                                  allowed="a path starting with /dev/")
        out.append(DeviceMount(dev, _permission(entry, path),
                               _bool(entry, "addGroupOwner", False, f"{path}.")))
    return tuple(out)


def _environment(lep: Mapping[str, Any]) -> dict[str, str]:
    raw = lep.get(ENVIRONMENT_VARIABLES_PATH[1])
    if raw is None:
        return {}
    path = ".".join(ENVIRONMENT_VARIABLES_PATH)
    if not isinstance(raw, Mapping):
        raise ValidationError(path, "must be an object", value=raw,
                              allowed="an object of name: string")
    env: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise ValidationError(path, "has an invalid variable name", value=name,
                                  allowed="a non-empty name without '=' or NUL",
                                  has_value=True)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(int(value)) if float(value).is_integer() else str(value)
        if not isinstance(value, str) or "\0" in value:
            raise ValidationError(f"{path}.{name}", "must be a string", value=value,
                                  allowed="a string", has_value=True)
        env[name] = value
    return env


def _event_sources(cfg: Mapping[str, Any]) -> tuple[EventSource, ...]:
    raw = cfg.get(Key.EVENT_SOURCES)
    if raw is None:
        return ()
    if isinstance(raw, list):
        items = [(str(i), v) for i, v in enumerate(raw)]
    elif isinstance(raw, Mapping):
        items = list(raw.items())
    else:
        raise ValidationError("pubsubTopics", "must be an object keyed by index", value=raw,
                              allowed='{"0": {"topic": ..., "type": "PUB_SUB"}}')
    out = []
    for index, entry in items:
        path = f"pubsubTopics.{index}"
        if not isinstance(entry, Mapping):
            raise ValidationError(path, "must be an object", value=entry)
        _check_keys(entry, SUBKEYS["pubsubTopics.*"], path)
        topic = entry.get("topic")
        if not isinstance(topic, str) or not topic:
            raise ValidationError(f"{path}.topic", "must be a non-empty topic", value=topic,
                                  allowed="an MQTT topic or filter", has_value=True)
        kind = _enum(entry, "type", EventSourceType, EventSourceType.PUB_SUB, f"{path}.")
        out.append(EventSource(topic, kind))
    return tuple(out)
