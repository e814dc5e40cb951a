"""The Lambda parameters: one table that every reader and writer of them derives from.

A Lambda function's parameters appear in three shapes, all AWS's:

* the **recipe configuration** the Lambda manager reads on the device (``timeoutInSeconds``,
  ``containerParams.memorySize`` ...), written by ``sprig lambda import`` and by AWS;
* the **import API** (``componentLambdaParameters`` of ``CreateComponentVersion``:
  ``linuxProcessParams.containerParams.memorySizeInKB`` ...), which ``sprig lambda import``
  reads and ``sprig lambda export-params`` writes;
* the **flags** of ``sprig lambda import`` (``--memory-kb`` ...).

:data:`PARAMETERS` says, for each parameter, its name in each shape, its type, its default and
its range (reference/greengrass-lambda.md §1.3-1.4, §2.2). The configuration reader
(:mod:`sprig.functions.config`), the import's validators and recipe writer
(:mod:`sprig.lambda_import`), ``export-params`` and ``docs/lambda-parameters.md`` all derive
from it, so adding a parameter means one row here plus the code that uses its value. The value
types a parameter holds (container mode, payload encoding, event sources, mounts) live here
too: they are the words of the table.

Pure data, imported by low layers (``config``, ``launcher``): it imports nothing of Sprig.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: The largest integer the AWS API accepts for every integer parameter (Java's int).
INT_MAX: Final = 2147483647


class ContainerMode(enum.StrEnum):
    """``containerMode``: a bubblewrap sandbox with its own cgroup, or a plain process."""

    GREENGRASS_CONTAINER = "GreengrassContainer"
    NO_CONTAINER = "NoContainer"


class PayloadEncoding(enum.StrEnum):
    """``inputPayloadEncodingType``: the runtime decodes JSON payloads, or passes bytes."""

    JSON = "json"
    BINARY = "binary"


class EventSourceType(enum.StrEnum):
    """``pubsubTopics.*.type``: the local pub/sub bus, or the MQTT bridge."""

    PUB_SUB = "PUB_SUB"
    IOT_CORE = "IOT_CORE"


class MountPermission(enum.StrEnum):
    """``permission`` of a volume or device: how :attr:`VolumeMount.writable` is spelled."""

    RO = "ro"
    RW = "rw"


@dataclass(frozen=True)
class VolumeMount:
    """A host directory mounted into a GreengrassContainer sandbox."""

    source_path: str
    destination_path: str
    writable: bool = False
    add_group_owner: bool = False

    @property
    def permission(self) -> MountPermission:
        return MountPermission.RW if self.writable else MountPermission.RO


@dataclass(frozen=True)
class DeviceMount:
    """A device under ``/dev`` made available in a GreengrassContainer sandbox."""

    path: str
    writable: bool = False
    add_group_owner: bool = False

    @property
    def permission(self) -> MountPermission:
        return MountPermission.RW if self.writable else MountPermission.RO


@dataclass(frozen=True)
class EventSource:
    """A topic filter (wildcards allowed) whose messages invoke the function."""

    topic: str
    type: EventSourceType = EventSourceType.PUB_SUB


#: Greengrass's own rules for mounts (reference §1.4): a volume never comes from /sys (that is
#: what ``mountROSysfs`` is for) nor goes onto /proc; a device is a path under /dev.
VOLUME_SOURCES_REFUSED: Final = ("/sys",)
VOLUME_DESTINATIONS_REFUSED: Final = ("/proc",)
DEVICE_DIRECTORY: Final = "/dev"

Entry = VolumeMount | DeviceMount | EventSource


def entry_document(entry: Entry) -> dict[str, Any]:
    """An entry in the shape both the configuration and the import API give it."""
    if isinstance(entry, VolumeMount):
        return {"sourcePath": entry.source_path, "destinationPath": entry.destination_path,
                "permission": entry.permission.value, "addGroupOwner": entry.add_group_owner}
    if isinstance(entry, DeviceMount):
        return {"path": entry.path, "permission": entry.permission.value,
                "addGroupOwner": entry.add_group_owner}
    return {"topic": entry.topic, "type": entry.type.value}


def entry_from_document(field: str, doc: Mapping[str, Any]) -> Entry:
    """The entry of parameter ``field`` from an already validated document (defaults filled)."""
    writable = doc.get("permission", MountPermission.RO.value) == MountPermission.RW.value
    group = bool(doc.get("addGroupOwner", False))
    if field == "volumes":
        return VolumeMount(doc["sourcePath"], doc["destinationPath"], writable, group)
    if field == "devices":
        return DeviceMount(doc["path"], writable, group)
    return EventSource(doc["topic"], EventSourceType(doc.get("type", EventSourceType.PUB_SUB)))


class Kind(enum.StrEnum):
    """What a parameter holds (how each shape spells it is the reader's business)."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    ENUM = "enum"
    #: volumes, devices, event sources: objects with :attr:`Parameter.items` keys (a list in the
    #: import API, an object keyed "0", "1"... in the configuration)
    ENTRIES = "entries"
    #: environment variables: name -> string
    STRINGS = "strings"
    #: execArgs: a list of strings (import API only: the recipe keeps them in its Setenv)
    ARGS = "args"


@dataclass(frozen=True)
class Parameter:
    """One Lambda parameter in every shape it has."""

    #: the :class:`~sprig.functions.config.LambdaConfig` field holding its value
    field: str
    #: its path in the recipe configuration (None: it is not configuration)
    key: str | None
    #: its path in ``componentLambdaParameters`` (the import API; None: a Sprig key the API
    #: does not have, so import and ``export-params`` leave it out)
    api: str | None
    #: the ``sprig lambda import`` flag setting it (None: no flag)
    flag: str | None
    kind: Kind
    #: the value when absent (None: optional, no value unless given)
    default: object
    #: the smallest and largest value (integers only; AWS's own validation)
    minimum: int | None = None
    maximum: int | None = None
    #: the values an ENUM parameter may take
    choices: type[enum.StrEnum] | None = None
    #: the keys of each entry (ENTRIES only)
    items: tuple[str, ...] = ()
    #: one line for the docs
    doc: str = ""

    @property
    def api_path(self) -> str:
        """:attr:`api` of a parameter the import API has (asking for another is a bug)."""
        if self.api is None:
            raise LookupError(f"{self.field} has no import API name")
        return self.api

    @property
    def range_text(self) -> str:
        """``1..2147483647`` (the import API's words for an integer's range)."""
        return f"{self.minimum}..{self.maximum}"


def _int(field: str, key: str, default: int | None, minimum: int, flag: str | None, doc: str,
         api: str | None = "") -> Parameter:
    """An integer parameter (``api=""``: the API calls it as the configuration does)."""
    return Parameter(field, key, key if api == "" else api, flag, Kind.INTEGER, default,
                     minimum, INT_MAX, doc=doc)


#: ``containerParams.ephemeralStorageSize``: at least 1 MB (KB, as ``memorySize``).
EPHEMERAL_MIN_KB: Final = 1024


_CONTAINER = "linuxProcessParams.containerParams"

#: Every Lambda parameter, in the order the configuration reader checks them.
PARAMETERS: Final[tuple[Parameter, ...]] = (
    Parameter("pinned", "pinned", "pinned", "--pinned/--on-demand", Kind.BOOLEAN, True,
              doc="a long-lived worker (true) or workers started per demand (false)"),
    _int("timeout_s", "timeoutInSeconds", 3, 1, "--timeout",
         "how long one invocation may run before its worker is killed"),
    _int("max_idle_s", "maxIdleTimeInSeconds", 60, 30, None,
         "how long an on-demand worker may stay idle before it is stopped"),
    _int("max_instances", "maxInstancesCount", 100, 1, None,
         "how many workers of an on-demand function may run at once"),
    _int("min_instances", "minInstancesCount", 0, 0, None,
         "how many workers of an on-demand function are kept started, before any invocation "
         "and through idle reaping (at most maxInstancesCount; refused when pinned; a Sprig "
         "key: Lambda's provisioned concurrency)", api=None),
    _int("max_queue_size", "maxQueueSize", 1000, 1, None,
         "how many invocations may wait for a worker"),
    _int("status_timeout_s", "statusTimeoutInSeconds", 60, 30, None,
         "how long a new worker may take to report itself ready"),
    Parameter("encoding", "inputPayloadEncodingType", "inputPayloadEncodingType", "--encoding",
              Kind.ENUM, PayloadEncoding.JSON, choices=PayloadEncoding,
              doc="whether the runtime decodes the payload as JSON"),
    Parameter("container_mode", "containerMode", "linuxProcessParams.isolationMode",
              "--isolation", Kind.ENUM, ContainerMode.GREENGRASS_CONTAINER,
              choices=ContainerMode, doc="a sandbox with its own cgroup, or a plain process"),
    _int("memory_kb", "containerParams.memorySize", 16384, 2048, "--memory-kb",
         "the sandbox's memory limit, in KB", api=f"{_CONTAINER}.memorySizeInKB"),
    Parameter("mount_ro_sysfs", "containerParams.mountROSysfs", f"{_CONTAINER}.mountROSysfs",
              None, Kind.BOOLEAN, False, doc="whether the sandbox sees /sys, read-only"),
    _int("ephemeral_storage_kb", "containerParams.ephemeralStorageSize", None, EPHEMERAL_MIN_KB,
         None, "the sandbox's /tmp and work directory become private in-memory file systems of "
         "at most this many KB each (refused with NoContainer)", api=None),
    Parameter("volumes", "containerParams.volumes", f"{_CONTAINER}.volumes", "--volume",
              Kind.ENTRIES, (), items=("sourcePath", "destinationPath", "permission",
                                       "addGroupOwner"),
              doc="host directories mounted into the sandbox"),
    Parameter("devices", "containerParams.devices", f"{_CONTAINER}.devices", "--device",
              Kind.ENTRIES, (), items=("path", "permission", "addGroupOwner"),
              doc="devices under /dev the sandbox may use"),
    Parameter("environment", "lambdaExecutionParameters.EnvironmentVariables",
              "environmentVariables", "--env", Kind.STRINGS, {},
              doc="the function's environment variables"),
    Parameter("event_sources", "pubsubTopics", "eventSources", "--event-source", Kind.ENTRIES,
              (), items=("topic", "type"),
              doc="topics whose messages invoke the function (PUB_SUB or IOT_CORE)"),
    Parameter("exec_args", None, "execArgs", "--exec-arg", Kind.ARGS, (),
              doc="arguments after the handler (kept in the recipe's Setenv, not configuration)"),
)

BY_FIELD: Final[Mapping[str, Parameter]] = {p.field: p for p in PARAMETERS}
BY_KEY: Final[Mapping[str, Parameter]] = {p.key: p for p in PARAMETERS if p.key is not None}
BY_API: Final[Mapping[str, Parameter]] = {p.api: p for p in PARAMETERS if p.api is not None}

#: The parameters the import API has (every one but Sprig's own keys).
API_PARAMETERS: Final[tuple[Parameter, ...]] = tuple(p for p in PARAMETERS if p.api is not None)

#: The parameters that are configuration (every one but execArgs).
CONFIGURATION: Final[tuple[Parameter, ...]] = tuple(p for p in PARAMETERS if p.key is not None)


def _tops(paths: list[str]) -> tuple[str, ...]:
    """The first segment of each path, in order, once each."""
    return tuple(dict.fromkeys(path.split(".", 1)[0] for path in paths))


def _under(paths: list[str], parent: str) -> list[str]:
    """The paths below ``parent``, relative to it."""
    return [p[len(parent) + 1:] for p in paths if p.startswith(parent + ".")]


_KEYS = [p.key for p in CONFIGURATION if p.key is not None]

#: Every top-level configuration key the Lambda manager reads (``containerParams`` ...).
CONFIG_KEYS: Final[tuple[str, ...]] = _tops(_KEYS)

#: The keys the reader reads inside each object-valued configuration key, and inside each entry
#: of the entry lists (``containerParams.volumes.*``): with :data:`CONFIG_KEYS`, every
#: configuration key Sprig reads.
SUBKEYS: Final[Mapping[str, tuple[str, ...]]] = {
    **{top: _tops(_under(_KEYS, top)) for top in CONFIG_KEYS if _under(_KEYS, top)},
    **{f"{p.key}.*": p.items for p in CONFIGURATION if p.kind is Kind.ENTRIES},
}

#: Where a Lambda component's environment variables live in its configuration.
ENVIRONMENT_VARIABLES_PATH: Final[tuple[str, ...]] = tuple(
    str(BY_FIELD["environment"].key).split("."))

def _api_names() -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for p in API_PARAMETERS:
        leaf = str(p.api).rsplit(".", 1)[-1]
        if p.key is None or leaf != p.key.rsplit(".", 1)[-1]:
            names[leaf] = p.key
    for api_top in _tops([str(p.api) for p in API_PARAMETERS]):
        if api_top not in CONFIG_KEYS and api_top not in names:
            names[api_top] = " and ".join(_tops([str(p.key) for p in CONFIGURATION
                                                 if str(p.api).startswith(api_top + ".")]))
    return names


#: Names of the import API that are not configuration keys, and the configuration key(s) each
#: one is (None: not configuration at all): what a deployment refuses with a hint when someone
#: writes an API name into a component's configuration (``isolationMode``).
API_NAMES: Final[Mapping[str, str | None]] = _api_names()


def get_path(doc: Mapping[str, Any], path: str) -> Any:
    """``doc`` at dotted ``path`` (``linuxProcessParams.isolationMode``); None when absent or
    when something on the way is not an object."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``doc`` at dotted ``path``, creating the objects on the way."""
    *parents, leaf = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[leaf] = value


def all_config_keys() -> list[str]:
    """Every configuration key path the reader reads (``containerParams.memorySize`` ...)."""
    out = list(CONFIG_KEYS)
    for parent, keys in SUBKEYS.items():
        out.extend(f"{parent}.{k}" for k in keys)
    return out


def api_keys(prefix: str = "") -> tuple[str, ...]:
    """The import API's keys directly under ``prefix`` (``""``: ``componentLambdaParameters``
    itself; ``linuxProcessParams``; ``linuxProcessParams.containerParams``), in table order."""
    paths = [str(p.api) for p in API_PARAMETERS]
    return _tops(_under(paths, prefix) if prefix else paths)


def markdown_table() -> str:
    """``docs/lambda-parameters.md``'s table (a test keeps the file equal to this)."""
    rows = ["| configuration key | import API (`componentLambdaParameters`) | `sprig lambda "
            "import` flag | type | default | range | what it does |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in PARAMETERS:
        if p.kind is Kind.ENUM and p.choices is not None:
            kind = " \\| ".join(f"`{c.value}`" for c in p.choices)
        elif p.kind is Kind.ENTRIES:
            kind = "entries of " + ", ".join(f"`{i}`" for i in p.items)
        else:
            kind = str(p.kind)
        default = p.default.value if isinstance(p.default, enum.Enum) else p.default
        shown = "none" if default in ((), {}, None) else f"`{str(default).lower()}`" \
            if isinstance(default, bool) else f"`{default}`"
        rows.append(" | ".join([
            f"| `{p.key}`" if p.key else "| (recipe Setenv)",
            f"`{p.api}`" if p.api else "(none: a Sprig key)",
            f"`{p.flag}`" if p.flag else "", kind, shown,
            p.range_text if p.kind is Kind.INTEGER else "", p.doc + " |"]))
    return "\n".join(rows) + "\n"
