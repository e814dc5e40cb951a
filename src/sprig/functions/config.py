"""A Lambda component's configuration as the Lambda manager reads it: :class:`LambdaConfig`.

What the keys are, their defaults and their ranges is :data:`sprig.lambda_params.PARAMETERS`
(one table for the reader, the import, ``export-params`` and the docs); this module is the
reader: it walks the table. :data:`~sprig.lambda_params.CONFIG_KEYS` and
:data:`~sprig.lambda_params.SUBKEYS` are the one list of what it reads. Inside the objects the
Lambda manager owns (``containerParams``, ``lambdaExecutionParameters``, each volume, device and
event-source entry) any other key is an error naming the nearest known one: a typo such as
``containerParams.memorySizeInKB`` would otherwise quietly become the default. At the top level
the configuration is also the function's own (it may keep keys there and read them over IPC),
so a deployment refuses only a key that is a near miss of a Lambda key or an import-API name
used as one (``timeoutInSecond``, ``isolationMode``): ``strict`` parsing; the running core
ignores the function's own keys. On a device numbers may arrive as floats or strings (``3.0``,
``"3"``), so every number is read leniently but must be a whole number inside the range AWS
validates (reference §1.4). The dataclass itself accepts any value, so tests can build
configurations below the minimums (e.g. a 0.2 s idle time) through its constructor.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

from sprig.errors import ValidationError
from sprig.lambda_params import (
    API_NAMES,
    BY_FIELD,
    CONFIG_KEYS,
    CONFIGURATION,
    INT_MAX,
    SUBKEYS,
    ContainerMode,
    DeviceMount,
    EventSource,
    EventSourceType,
    Kind,
    Parameter,
    PayloadEncoding,
    VolumeMount,
    entry_document,
    set_path,
)
from sprig.suggest import did_you_mean

E = TypeVar("E", bound=enum.StrEnum)


T = TypeVar("T")


def _default(name: str, kind: type[T]) -> T:
    """The table's default of parameter ``name`` (typed for the dataclass below)."""
    value = BY_FIELD[name].default
    assert isinstance(value, kind), name
    return value


_PINNED = _default("pinned", bool)
_TIMEOUT_S = _default("timeout_s", int)
_MAX_IDLE_S = _default("max_idle_s", int)
_MAX_INSTANCES = _default("max_instances", int)
_MIN_INSTANCES = _default("min_instances", int)
_MAX_QUEUE_SIZE = _default("max_queue_size", int)
_STATUS_TIMEOUT_S = _default("status_timeout_s", int)
_ENCODING = _default("encoding", PayloadEncoding)
_CONTAINER_MODE = _default("container_mode", ContainerMode)
_MEMORY_KB = _default("memory_kb", int)
_MOUNT_RO_SYSFS = _default("mount_ro_sysfs", bool)


@dataclass(frozen=True)
class LambdaConfig:
    """Everything the Lambda manager needs from a function component's configuration."""

    pinned: bool = _PINNED
    timeout_s: float = _TIMEOUT_S
    max_idle_s: float = _MAX_IDLE_S
    max_instances: int = _MAX_INSTANCES
    #: minInstancesCount (a Sprig key, Lambda's provisioned concurrency): on-demand workers
    #: started before any invocation and kept through idle reaping
    min_instances: int = _MIN_INSTANCES
    max_queue_size: int = _MAX_QUEUE_SIZE
    status_timeout_s: float = _STATUS_TIMEOUT_S
    encoding: PayloadEncoding = _ENCODING
    container_mode: ContainerMode = _CONTAINER_MODE
    memory_kb: int = _MEMORY_KB
    mount_ro_sysfs: bool = _MOUNT_RO_SYSFS
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

    def to_configuration(self) -> dict[str, Any]:
        """The configuration that reads back as this value: every key, as AWS writes it
        (entry lists as objects keyed ``"0"``, ``"1"``...); an optional key without a value
        is left out, and so is a Sprig-only key (no AWS API name) at its default, so that what
        AWS would generate stays exactly AWS's."""
        out: dict[str, Any] = {}
        for param in CONFIGURATION:
            value: Any = getattr(self, param.field)
            if value is None or (param.api is None and value == param.default):
                continue
            if param.kind is Kind.ENUM:
                value = value.value
            elif param.kind is Kind.ENTRIES:
                value = {str(i): entry_document(e) for i, e in enumerate(value)}
            elif param.kind is Kind.STRINGS:
                value = dict(value)
            set_path(out, str(param.key), value)
        return out

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


#: Top-level keys of a Lambda component's configuration that are not the Lambda manager's:
#: ``accessControl`` (its IPC policies, checked by the deployment on every component).
OTHER_KEYS = ("accessControl",)


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
    known = (*CONFIG_KEYS, *OTHER_KEYS)
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
    # The objects the Lambda manager owns (containerParams, lambdaExecutionParameters).
    objects: dict[str, Mapping[str, Any]] = {"": cfg}
    for top in CONFIG_KEYS:
        if top in SUBKEYS:
            objects[top] = _mapping(cfg, top)
            _check_keys(objects[top], SUBKEYS[top], top)
    values: dict[str, Any] = {}
    for param in CONFIGURATION:
        parent, _, leaf = str(param.key).rpartition(".")
        values[param.field] = _read(objects[parent], leaf, param, f"{parent}." if parent else "")
    _check_min_instances(cfg, values)
    return LambdaConfig(**values)


def _check_min_instances(cfg: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """``minInstancesCount``: at most ``maxInstancesCount``, and only for an on-demand function
    (a pinned one always keeps its one worker; a count there would mean nothing, so it is
    refused rather than ignored)."""
    key, count, top = "minInstancesCount", values["min_instances"], values["max_instances"]
    if count > top:
        raise ValidationError(key, "is larger than maxInstancesCount", value=cfg.get(key),
                              allowed=f"a whole number from 0 to maxInstancesCount ({top})")
    if count and values["pinned"]:
        raise ValidationError(key, "applies to on-demand functions only (pinned: false); a "
                              "pinned function always keeps its one worker started",
                              value=cfg.get(key), allowed="0 (or leave it out) when pinned "
                              "is true")


def _read(src: Mapping[str, Any], leaf: str, param: Parameter, prefix: str) -> Any:
    """The value of ``param`` (``src[leaf]``, where ``src`` is at ``prefix``), checked."""
    default = param.default
    if param.kind is Kind.BOOLEAN:
        assert isinstance(default, bool)
        return _bool(src, leaf, default, prefix)
    if param.kind is Kind.INTEGER:
        assert param.minimum is not None
        if default is None:             # optional: absent stays None (no default size)
            return None if src.get(leaf) is None else _int(src, leaf, 0, param.minimum, prefix)
        assert isinstance(default, int)
        return _int(src, leaf, default, param.minimum, prefix)
    if param.kind is Kind.ENUM:
        assert isinstance(default, enum.StrEnum) and param.choices is not None
        return _enum(src, leaf, param.choices, default, prefix)
    if param.kind is Kind.STRINGS:
        return _environment(src, prefix + leaf)
    return _ENTRY_READERS[param.field](src, prefix + leaf)


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


def _entries(params: Mapping[str, Any], path: str) -> list[tuple[str, Mapping[str, Any]]]:
    """``{"0": {...}, "1": {...}}`` (or a list) at ``path`` as (path, entry) pairs in index
    order."""
    raw = params.get(path.rsplit(".", 1)[-1])
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


def _volumes(params: Mapping[str, Any], at: str) -> tuple[VolumeMount, ...]:
    out = []
    for path, entry in _entries(params, at):
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


def _devices(params: Mapping[str, Any], at: str) -> tuple[DeviceMount, ...]:
    out = []
    for path, entry in _entries(params, at):
        dev = _abs_path(entry, "path", path)
        if not _under(dev, "/dev") or dev == "/dev":
            raise ValidationError(f"{path}.path", "must be a device under /dev", value=dev,
                                  allowed="a path starting with /dev/")
        out.append(DeviceMount(dev, _permission(entry, path),
                               _bool(entry, "addGroupOwner", False, f"{path}.")))
    return tuple(out)


def _environment(lep: Mapping[str, Any], path: str) -> dict[str, str]:
    raw = lep.get(path.rsplit(".", 1)[-1])
    if raw is None:
        return {}
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


def _event_sources(cfg: Mapping[str, Any], at: str) -> tuple[EventSource, ...]:
    raw = cfg.get(at)
    if raw is None:
        return ()
    if isinstance(raw, list):
        items = [(str(i), v) for i, v in enumerate(raw)]
    elif isinstance(raw, Mapping):
        items = list(raw.items())          # in the order given (not sorted, unlike mounts)
    else:
        raise ValidationError(at, "must be an object keyed by index", value=raw,
                              allowed='{"0": {"topic": ..., "type": "PUB_SUB"}}')
    out = []
    for index, entry in items:
        path = f"{at}.{index}"
        if not isinstance(entry, Mapping):
            raise ValidationError(path, "must be an object", value=entry)
        _check_keys(entry, SUBKEYS[f"{at}.*"], path)
        topic = entry.get("topic")
        if not isinstance(topic, str) or not topic:
            raise ValidationError(f"{path}.topic", "must be a non-empty topic", value=topic,
                                  allowed="an MQTT topic or filter", has_value=True)
        kind = _enum(entry, "type", EventSourceType, EventSourceType.PUB_SUB, f"{path}.")
        out.append(EventSource(topic, kind))
    return tuple(out)


_ENTRY_READERS: dict[str, Callable[[Mapping[str, Any], str], tuple[Any, ...]]] = {
    "volumes": _volumes,
    "devices": _devices,
    "event_sources": _event_sources,
}
