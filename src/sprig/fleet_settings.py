"""The ``fleet`` section of ``config.yaml``: which fleet this device joins, and where its
components come from. The broker is the ``mqtt`` section's (the fleet needs one).

::

    fleet:
      thingGroups: [line-1, berlin]      # the thing groups whose deployments this device runs
      topicPrefix: sprig                 # every fleet topic starts with it (default sprig)
      store:                             # the component store: an S3 bucket (or compatible)
        uri: s3://my-bucket/sprig        # or just ``store: s3://my-bucket/sprig``
        endpoint: http://10.0.0.5:9000   # S3-compatible stores (MinIO, Ceph, Garage...)
        region: eu-west-1                # default: AWS_REGION, the AWS config file, awsRegion
        profile: fleet                   # AWS shared credentials profile (default: AWS_PROFILE
                                         # or "default"); AWS_ACCESS_KEY_ID... win when set
        addressing: path                 # path | virtual (default: path with an endpoint)
      statusPublishIntervalSeconds: 86400   # the periodic Fleet Status message (Greengrass's
                                            # default; at least 60 here)

Every key is honoured or refused, naming the key, the value and what is allowed: a device that
silently ignored ``thingGroups`` would run nothing a controller sends it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sprig.errors import ValidationError

SECTION = "fleet"
DEFAULT_PREFIX = "sprig"
#: Greengrass's ``fleetStatus.periodicStatusPublishIntervalSeconds`` default (and its minimum).
DEFAULT_STATUS_INTERVAL_S = 86_400
#: Sprig allows shorter periods: on a broker of your own an offline device should not look
#: healthy for a day (a complaint Greengrass users made, see docs/fleet.md).
MIN_STATUS_INTERVAL_S = 60
#: AWS IoT thing and thing group names: ``[a-zA-Z0-9:_-]+``, 1-128 characters.
NAME_RE = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
NAME_ALLOWED = "1-128 characters from a-z A-Z 0-9 : _ - (AWS IoT thing and group names)"
#: Topic prefix levels: no wildcards, no ``$`` (reserved for the broker), no empty level.
PREFIX_RE = re.compile(r"[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*")
#: S3 bucket names (the rules common to AWS S3 and the compatible stores).
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

_KEYS = ("thingGroups", "topicPrefix", "store", "statusPublishIntervalSeconds")
_STORE_KEYS = ("uri", "endpoint", "region", "profile", "addressing")


@dataclass(frozen=True)
class StoreSettings:
    """Where the component store is: ``s3://bucket/prefix`` and how to reach it."""

    bucket: str
    prefix: str = ""                 # no leading or trailing slash; "" = the bucket's root
    endpoint: str | None = None      # http(s)://host[:port] of an S3-compatible store
    region: str | None = None        # None: from the AWS configuration, else awsRegion
    profile: str | None = None
    addressing: str | None = None    # "path" | "virtual"; None: path with an endpoint

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def path_style(self) -> bool:
        if self.addressing is not None:
            return self.addressing == "path"
        return self.endpoint is not None

    def key(self, *parts: str) -> str:
        """An object key below the store's prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)


@dataclass(frozen=True)
class FleetSettings:
    store: StoreSettings
    thing_groups: tuple[str, ...] = ()
    topic_prefix: str = DEFAULT_PREFIX
    status_interval_s: int = DEFAULT_STATUS_INTERVAL_S

    @classmethod
    def from_mapping(cls, cfg: object, source: str, *, require_groups: bool = True,
                     ) -> FleetSettings:
        """Parse the section; every problem names ``fleet.<key>``, the value and what is
        allowed. ``require_groups`` is False for the operator's own configuration."""
        if not isinstance(cfg, Mapping):
            raise _error("", "must be a mapping", cfg, "{thingGroups, topicPrefix, store, "
                         "statusPublishIntervalSeconds}", source)
        unknown = sorted(str(k) for k in cfg if k not in _KEYS)
        if unknown:
            raise _error(unknown[0], "unknown key", unknown[0], ", ".join(_KEYS), source)
        if "store" not in cfg or cfg["store"] in (None, ""):
            raise _error("store", "is required: devices take recipes and artifacts from the "
                         "component store", None, "s3://bucket[/prefix] or {uri: s3://..., "
                         "endpoint, region, profile, addressing}", source)
        groups = _groups(cfg.get("thingGroups"), source, require_groups)
        prefix = cfg.get("topicPrefix", DEFAULT_PREFIX)
        if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
            raise _error("topicPrefix", "must be MQTT topic levels without wildcards or '$'",
                         prefix, "e.g. sprig or plant-7/sprig (letters, digits, _ . : -)",
                         source)
        interval = cfg.get("statusPublishIntervalSeconds", DEFAULT_STATUS_INTERVAL_S)
        if isinstance(interval, bool) or not isinstance(interval, int) \
                or not MIN_STATUS_INTERVAL_S <= interval <= 10 * DEFAULT_STATUS_INTERVAL_S:
            raise _error("statusPublishIntervalSeconds", "out of range or not an integer",
                         interval, f"an integer from {MIN_STATUS_INTERVAL_S} to "
                         f"{10 * DEFAULT_STATUS_INTERVAL_S} (default {DEFAULT_STATUS_INTERVAL_S},"
                         " Greengrass's)", source)
        return cls(store=parse_store(cfg["store"], source), thing_groups=groups,
                   topic_prefix=prefix, status_interval_s=interval)


def _groups(value: object, source: str, required: bool) -> tuple[str, ...]:
    if value is None:
        if required:
            raise _error("thingGroups", "is required: the thing groups whose deployments this "
                         "device runs", None, "a list of group names, e.g. [line-1]", source)
        return ()
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise _error("thingGroups", "must be a list of group names", value,
                     "e.g. [line-1, berlin]", source)
    for g in value:
        if not NAME_RE.fullmatch(g):
            raise _error("thingGroups", "is not a valid thing group name", g, NAME_ALLOWED,
                         source)
    if len(set(value)) != len(value):
        dup = next(g for g in value if value.count(g) > 1)
        raise _error("thingGroups", "lists a group twice", dup, "each group once", source)
    return tuple(value)


def parse_store(value: object, source: str, path: str = "store") -> StoreSettings:
    """``s3://bucket[/prefix]`` or the mapping form."""
    if isinstance(value, str):
        value = {"uri": value}
    if not isinstance(value, Mapping):
        raise _error(path, "must be an s3:// URI or a mapping", value,
                     "s3://bucket[/prefix] or {uri, endpoint, region, profile, addressing}",
                     source)
    unknown = sorted(str(k) for k in value if k not in _STORE_KEYS)
    if unknown:
        raise _error(f"{path}.{unknown[0]}", "unknown key", unknown[0], ", ".join(_STORE_KEYS),
                     source)
    bucket, prefix = parse_s3_uri(value.get("uri"), f"{SECTION}.{path}.uri", source)
    endpoint = value.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or not re.fullmatch(
            r"https?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?/?", endpoint)):
        raise _error(f"{path}.endpoint", "must be an http(s) URL of an S3-compatible store",
                     endpoint, "http(s)://host[:port], e.g. http://127.0.0.1:9000", source)
    strings: dict[str, str | None] = {}
    for key in ("region", "profile"):
        v = value.get(key)
        if v is not None and (not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", v)):
            raise _error(f"{path}.{key}", "must be a name", v,
                         "letters, digits, _ . - (e.g. us-east-1, default)", source)
        strings[key] = v
    addressing = value.get("addressing")
    if addressing is not None and addressing not in ("path", "virtual"):
        raise _error(f"{path}.addressing", "unknown addressing style", addressing,
                     "path (endpoint/bucket/key) or virtual (bucket.endpoint/key)", source)
    return StoreSettings(bucket=bucket, prefix=prefix,
                         endpoint=endpoint.rstrip("/") if endpoint else None,
                         region=strings["region"], profile=strings["profile"],
                         addressing=addressing)


def parse_s3_uri(uri: object, path: str, source: str | None = None) -> tuple[str, str]:
    """``s3://bucket[/prefix]`` → (bucket, prefix without surrounding slashes)."""
    allowed = "s3://bucket or s3://bucket/prefix (a bucket name: 3-63 of a-z 0-9 . -)"
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise _error(path, "must be an s3:// URI", uri, allowed, source, full=True)
    bucket, _, prefix = uri[5:].partition("/")
    if not BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise _error(path, "has an invalid bucket name", uri, allowed, source, full=True)
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise _error(path, "has an empty or relative part in its prefix", uri, allowed, source,
                     full=True)
    return bucket, prefix


def _error(key: str, message: str, value: object, allowed: str, source: str | None, *,
           full: bool = False) -> ValidationError:
    where = key if full else (f"{SECTION}.{key}" if key else SECTION)
    return ValidationError(where, message, value=value, allowed=allowed, source=source,
                           has_value=value is not None)
