"""The ``aws.greengrass.ShadowManager`` configuration, validated whole before anything changes.

Greengrass's keys (its component page and README), every one honoured::

    shadowDocumentSizeLimitBytes: 8192          # default 8192, at most 30720
    rateLimits:
      maxOutboundSyncUpdatesPerSecond: 100      # updates sent to the broker per second
      maxTotalLocalRequestsRate: 200            # local requests per second, all things
      maxLocalRequestsPerSecondPerThing: 20     # local requests per second, one thing
    strategy: {type: realTime}                  # or {type: periodic, delay: <seconds>}
    synchronize:
      direction: betweenDeviceAndCloud          # or deviceToCloud, cloudToDevice
      coreThing: {classic: true, namedShadows: [a, b]}
      shadowDocuments: [{thingName: T, classic: false, namedShadows: [c]}]
      shadowDocumentsMap: {T2: {classic: true}}

``classic`` defaults to true. Greengrass ignores keys it does not know; Sprig refuses them, naming
the key and what is allowed, so a misspelt ``namedShadow`` cannot silently sync nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sprig.errors import ValidationError
from sprig.shadow.document import (
    DEFAULT_SIZE_LIMIT,
    MAX_SIZE_LIMIT,
    ShadowError,
    validate_shadow_name,
    validate_thing_name,
)

TOP_KEYS: Final = ("shadowDocumentSizeLimitBytes", "rateLimits", "strategy", "synchronize",
                   "accessControl")
RATE_KEYS: Final = {"maxOutboundSyncUpdatesPerSecond": 100, "maxTotalLocalRequestsRate": 200,
                    "maxLocalRequestsPerSecondPerThing": 20}
SYNC_KEYS: Final = ("direction", "coreThing", "shadowDocuments", "shadowDocumentsMap")
THING_KEYS: Final = ("classic", "namedShadows")


class Direction(enum.StrEnum):
    BETWEEN_DEVICE_AND_CLOUD = "betweenDeviceAndCloud"
    DEVICE_TO_CLOUD = "deviceToCloud"
    CLOUD_TO_DEVICE = "cloudToDevice"

    @property
    def to_cloud(self) -> bool:
        return self is not Direction.CLOUD_TO_DEVICE

    @property
    def to_device(self) -> bool:
        return self is not Direction.DEVICE_TO_CLOUD


class Strategy(enum.StrEnum):
    REAL_TIME = "realTime"
    PERIODIC = "periodic"


@dataclass(frozen=True, order=True)
class ShadowId:
    """One shadow: ``name`` ``''`` is the classic shadow."""

    thing: str
    name: str = ""

    def __str__(self) -> str:
        return self.thing + (f" (named shadow {self.name})" if self.name else " (classic shadow)")


@dataclass(frozen=True)
class ShadowManagerConfig:
    size_limit: int = DEFAULT_SIZE_LIMIT
    max_outbound_per_second: int = 100
    max_local_total: int = 200
    max_local_per_thing: int = 20
    strategy: Strategy = Strategy.REAL_TIME
    delay_seconds: float = 0.0
    direction: Direction = Direction.BETWEEN_DEVICE_AND_CLOUD
    synchronized: frozenset[ShadowId] = field(default_factory=frozenset)


def _bad(path: str, message: str, value: Any, allowed: str, source: str | None
         ) -> ValidationError:
    return ValidationError(path, message, value=value, allowed=allowed, source=source,
                           has_value=True)


def _mapping(value: Any, path: str, allowed: str, source: str | None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(path, "must be an object", value, allowed, source)
    return value


def _known(value: Mapping[str, Any], keys: tuple[str, ...], path: str,
           source: str | None) -> None:
    for key in value:
        if key not in keys:
            raise _bad(f"{path}.{key}" if path else key, "unknown key", key,
                       ", ".join(keys), source)


def _positive_int(value: Any, path: str, allowed: str, source: str | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or value <= 0:
        raise _bad(path, "must be a positive whole number", value, allowed, source)
    return int(value)


def parse_config(configuration: Mapping[str, Any] | None, *, core_thing: str | None,
                 source: str | None = None) -> ShadowManagerConfig:
    """Validate the whole configuration (raises :class:`ValidationError`) and return it."""
    cfg = configuration or {}
    _known(cfg, TOP_KEYS, "", source)
    size = cfg.get("shadowDocumentSizeLimitBytes")
    if size is None or (size == 0 and not isinstance(size, bool)):
        size_limit = DEFAULT_SIZE_LIMIT
    else:
        size_limit = _positive_int(size, "shadowDocumentSizeLimitBytes",
                                   f"1 to {MAX_SIZE_LIMIT} bytes (default "
                                   f"{DEFAULT_SIZE_LIMIT})", source)
        if size_limit > MAX_SIZE_LIMIT:
            raise _bad("shadowDocumentSizeLimitBytes", "exceeds the maximum shadow size", size,
                       f"1 to {MAX_SIZE_LIMIT} bytes (default {DEFAULT_SIZE_LIMIT})", source)
    rates = dict(RATE_KEYS)
    if cfg.get("rateLimits") is not None:
        given = _mapping(cfg["rateLimits"], "rateLimits", ", ".join(RATE_KEYS), source)
        _known(given, tuple(RATE_KEYS), "rateLimits", source)
        for key, value in given.items():
            rates[key] = _positive_int(value, f"rateLimits.{key}",
                                       f"a number greater than 0 (default {RATE_KEYS[key]})",
                                       source)
    strategy, delay = Strategy.REAL_TIME, 0.0
    if cfg.get("strategy") is not None:
        st = _mapping(cfg["strategy"], "strategy", "{type: realTime} or {type: periodic, "
                      "delay: <seconds>}", source)
        _known(st, ("type", "delay"), "strategy", source)
        try:
            strategy = Strategy(str(st.get("type")))
        except ValueError:
            raise _bad("strategy.type", "unknown strategy", st.get("type"),
                       "realTime, periodic", source) from None
        if strategy is Strategy.PERIODIC:
            delay = _positive_int(st.get("delay"), "strategy.delay",
                                  "seconds between syncs, greater than 0", source)
        elif st.get("delay") is not None:
            raise _bad("strategy.delay", "applies only to the periodic strategy",
                       st.get("delay"), "omit it, or use type periodic", source)
    direction = Direction.BETWEEN_DEVICE_AND_CLOUD
    synchronized: set[ShadowId] = set()
    if cfg.get("synchronize") is not None:
        sync = _mapping(cfg["synchronize"], "synchronize", ", ".join(SYNC_KEYS), source)
        _known(sync, SYNC_KEYS, "synchronize", source)
        if sync.get("direction") is not None:
            try:
                direction = next(d for d in Direction
                                 if str(d).lower() == str(sync["direction"]).lower())
            except StopIteration:
                raise _bad("synchronize.direction", "unknown direction", sync["direction"],
                           ", ".join(Direction), source) from None
        if sync.get("coreThing") is not None:
            if not core_thing:
                raise _bad("synchronize.coreThing", "the core has no thing name",
                           sync["coreThing"], "set thingName in config.yaml, or list the "
                           "thing under shadowDocuments", source)
            synchronized |= _thing(sync["coreThing"], core_thing, "synchronize.coreThing",
                                   source)
        docs = sync.get("shadowDocuments")
        if docs is not None:
            if not isinstance(docs, list):
                raise _bad("synchronize.shadowDocuments", "must be a list", docs,
                           "[{thingName, classic, namedShadows}]", source)
            for i, entry in enumerate(docs):
                where = f"synchronize.shadowDocuments[{i}]"
                entry = _mapping(entry, where, "{thingName, classic, namedShadows}", source)
                thing = entry.get("thingName")
                rest = {k: v for k, v in entry.items() if k != "thingName"}
                synchronized |= _thing(rest, thing, where, source, name_path="thingName")
        by_map = sync.get("shadowDocumentsMap")
        if by_map is not None:
            by_map = _mapping(by_map, "synchronize.shadowDocumentsMap",
                              "{<thingName>: {classic, namedShadows}}", source)
            for thing, entry in by_map.items():
                synchronized |= _thing(entry, thing, f"synchronize.shadowDocumentsMap.{thing}",
                                       source)
    return ShadowManagerConfig(
        size_limit=size_limit,
        max_outbound_per_second=rates["maxOutboundSyncUpdatesPerSecond"],
        max_local_total=rates["maxTotalLocalRequestsRate"],
        max_local_per_thing=rates["maxLocalRequestsPerSecondPerThing"],
        strategy=strategy, delay_seconds=float(delay), direction=direction,
        synchronized=frozenset(synchronized))


def _thing(entry: Any, thing: Any, path: str, source: str | None,
           name_path: str | None = None) -> set[ShadowId]:
    entry = _mapping(entry, path, "{classic: true|false, namedShadows: [names]}", source)
    _known(entry, THING_KEYS, path, source)
    try:
        thing = validate_thing_name(thing)
    except ShadowError as e:
        where = f"{path}.{name_path}" if name_path else path
        raise _bad(where, e.message, thing, "1 to 128 of a-z A-Z 0-9 : _ -", source) from None
    out: set[ShadowId] = set()
    classic = entry.get("classic", True)
    if not isinstance(classic, bool):
        raise _bad(f"{path}.classic", "must be a boolean", classic, "true (default), false",
                   source)
    if classic:
        out.add(ShadowId(thing, ""))
    names = entry.get("namedShadows")
    if names is not None:
        if not isinstance(names, list):
            raise _bad(f"{path}.namedShadows", "must be a list", names, "[shadow names]", source)
        for i, name in enumerate(names):
            try:
                if not isinstance(name, str) or not name:
                    raise ShadowError(400, "ShadowName must be a non-empty string")
                validate_shadow_name(name)
            except ShadowError as e:
                raise _bad(f"{path}.namedShadows[{i}]", e.message, name,
                           "1 to 64 of a-z A-Z 0-9 : _ -", source) from None
            out.add(ShadowId(thing, name))
    return out
