"""Core settings from ``config.yaml`` in the root directory (all optional, embedded defaults).

```yaml
thingName: my-gateway            # default: the host name
awsRegion: us-east-1
runWithDefault:
  posixUser: sprig_user:sprig_group   # default run-as user for components and functions
invokeApi:
  port: 0                        # 0 = any free loopback port; the URL is in run/endpoints.json
mqtt:                            # optional: a broker to bridge IOT_CORE topics to (see sprig.mqtt)
  host: localhost
fleet:                           # optional: join a fleet on that broker (sprig.fleet_settings)
  thingGroups: [line-1]
  store: s3://bucket/prefix
logging:                         # as the Greengrass nucleus's ``logging`` configuration
  level: INFO                    # DEBUG | INFO | WARN | ERROR
  fileSizeKB: 1024               # a log file is rotated when it would pass this size
  totalLogsSizeKB: 10240         # per log (the core's, each component's), rotated files included
  format: TEXT                   # TEXT only (JSON is refused, not ignored)
  outputType: FILE               # FILE only (CONSOLE is refused, not ignored)
console:                         # the local web console (see sprig.console)
  enabled: true                  # false: no console, `sprig console login` says so
  port: 0                        # 0 = any free port; the URL is in run/endpoints.json (console)
  bindAddress: 127.0.0.1         # loopback; any other address needs tls
  tls: {certPath: device.pem.crt, keyPath: private.pem.key}   # optional; {}: mqtt.tls's pair
deploymentLimits:                # what one deployment may bring (see sprig.recipe.limits)
  recipeMaxSizeBytes: 1048576    # one recipe file
  artifactsMaxSizeBytes: 1073741824   # one component version: artifacts as copied + unpacked
  artifactsMaxFiles: 100000      # one component version: files and directories
```
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sprig.errors import ValidationError
from sprig.fleet_settings import FleetSettings
from sprig.logs import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES
from sprig.recipe.limits import (
    BYTES_KEY,
    CONFIG_SECTION,
    FILES_KEY,
    RECIPE_KEY,
    StagingLimits,
)
from sprig.run_as import RunAs

_KEYS = {"thingName", "awsRegion", "runWithDefault", "invokeApi", "mqtt", "logging",
         "deploymentTimeoutSeconds", "deploymentStabilitySeconds", "console", CONFIG_SECTION,
         "fleet"}
_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR")
# Greengrass's nucleus ``logging`` keys; those Sprig cannot honour are refused when set to
# anything but the one value it implements (outputDirectory: the logs are under <root>/logs).
_LOGGING_KEYS = ("level", "fileSizeKB", "totalLogsSizeKB", "format", "outputType")
_ONLY_VALUE = {"format": "TEXT", "outputType": "FILE"}


@dataclass(frozen=True)
class ConsoleSettings:
    """``console`` in config.yaml. ``tls`` None: plain HTTP; a (cert, key) pair of paths as
    written (relative ones are under the root); ("", ""): the device's pair from ``mqtt.tls``."""

    enabled: bool = True
    port: int = 0
    bind_address: str = "127.0.0.1"
    tls: tuple[str, str] | None = None

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.bind_address).is_loopback


@dataclass(frozen=True)
class CoreSettings:
    thing_name: str = field(default_factory=lambda: socket.gethostname() or "sprig-core")
    region: str = "us-east-1"
    run_with_default: RunAs | None = None
    invoke_api_port: int = 0
    mqtt: Mapping[str, Any] | None = None
    log_level: str = "INFO"
    log_file_bytes: int = DEFAULT_MAX_FILE_BYTES      # logging.fileSizeKB
    log_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES    # logging.totalLogsSizeKB
    deployment_timeout_s: float = 300.0
    #: how long a deployment watches a Run process it started before calling it a success
    deployment_stability_s: float = 3.0
    deployment_limits: StagingLimits = field(default_factory=StagingLimits)
    fleet: FleetSettings | None = None
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    @classmethod
    def load(cls, path: Path) -> CoreSettings:
        if not path.exists():
            return cls.from_mapping({}, str(path))
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValidationError("", f"not valid YAML: {e}", source=str(path)) from None
        return cls.from_mapping(data, str(path))

    @classmethod
    def from_mapping(cls, data: object, source: str) -> CoreSettings:
        if not isinstance(data, Mapping):
            raise ValidationError("", "must be a mapping", value=data, source=source,
                                  allowed="a YAML mapping")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ValidationError(unknown[0], "unknown key", allowed=", ".join(sorted(_KEYS)),
                                  source=source)
        kwargs: dict[str, Any] = {}
        if "thingName" in data:
            kwargs["thing_name"] = _string(data, "thingName", source)
        if "awsRegion" in data:
            kwargs["region"] = _string(data, "awsRegion", source)
        run_with = data.get("runWithDefault")
        if run_with is not None:
            if not isinstance(run_with, Mapping) or set(run_with) - {"posixUser"}:
                raise ValidationError("runWithDefault", "must be a mapping with posixUser",
                                      value=run_with, source=source,
                                      allowed="{posixUser: user[:group]}")
            kwargs["run_with_default"] = parse_posix_user(
                run_with.get("posixUser"), "runWithDefault.posixUser", source)
        api = data.get("invokeApi")
        if api is not None:
            if not isinstance(api, Mapping) or set(api) - {"port"}:
                raise ValidationError("invokeApi", "must be a mapping with port", value=api,
                                      source=source, allowed="{port: 0..65535}")
            port = api.get("port", 0)
            if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
                raise ValidationError("invokeApi.port", "must be a port number", value=port,
                                      source=source, allowed="0..65535 (0 = any free port)")
            kwargs["invoke_api_port"] = port
        if data.get("mqtt") is not None:
            if not isinstance(data["mqtt"], Mapping):
                raise ValidationError("mqtt", "must be a mapping", value=data["mqtt"],
                                      source=source, allowed="broker settings")
            kwargs["mqtt"] = dict(data["mqtt"])
        if data.get("logging") is not None:
            kwargs.update(_logging(data["logging"], source))
        if "deploymentTimeoutSeconds" in data:
            t = data["deploymentTimeoutSeconds"]
            if not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0:
                raise ValidationError("deploymentTimeoutSeconds", "must be a positive number",
                                      value=t, source=source, allowed="seconds > 0")
            kwargs["deployment_timeout_s"] = float(t)
        if "deploymentStabilitySeconds" in data:
            t = data["deploymentStabilitySeconds"]
            if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 600:
                raise ValidationError("deploymentStabilitySeconds", "must be a number of "
                                      "seconds from 0 to 600", value=t, source=source,
                                      allowed="0 (no watch) to 600; default 3")
            kwargs["deployment_stability_s"] = float(t)
        if data.get(CONFIG_SECTION) is not None:
            kwargs["deployment_limits"] = _deployment_limits(data[CONFIG_SECTION], source)
        if data.get("fleet") is not None:
            mqtt = data.get("mqtt")
            if not isinstance(mqtt, Mapping) or not mqtt.get("host"):
                raise ValidationError("fleet", "a fleet needs a broker: the mqtt section has no "
                                      "host", value=mqtt, source=source,
                                      allowed="mqtt: {host: ..., port: ...} beside fleet:")
            kwargs["fleet"] = FleetSettings.from_mapping(data["fleet"], source)
        if data.get("console") is not None:
            kwargs["console"] = _console(data["console"], data.get("mqtt"), source)
        return cls(**kwargs)


def _logging(cfg: object, source: str) -> dict[str, Any]:
    """The ``logging`` section: every key honoured (for the core's log and every component's)
    or refused, naming the key, the value and what is allowed."""
    if not isinstance(cfg, Mapping):
        raise ValidationError("logging", "must be a mapping", value=cfg, source=source,
                              allowed="{" + ", ".join(f"{k}: ..." for k in _LOGGING_KEYS) + "}")
    unknown = sorted(str(k) for k in set(cfg) - set(_LOGGING_KEYS))
    if unknown:
        raise ValidationError(f"logging.{unknown[0]}", "unknown or unsupported key",
                              source=source, allowed=", ".join(_LOGGING_KEYS))
    out: dict[str, Any] = {}
    level = cfg.get("level", "INFO")
    if not isinstance(level, str) or level.upper() not in _LEVELS:
        raise ValidationError("logging.level", "unknown log level", value=level,
                              source=source, allowed=", ".join(_LEVELS))
    out["log_level"] = level.upper()
    file_kb = _kilobytes(cfg, "fileSizeKB", DEFAULT_MAX_FILE_BYTES // 1024, source)
    total_kb = _kilobytes(cfg, "totalLogsSizeKB", DEFAULT_MAX_TOTAL_BYTES // 1024, source)
    if total_kb < file_kb:
        raise ValidationError("logging.totalLogsSizeKB", "must be at least fileSizeKB",
                              value=total_kb, source=source,
                              allowed=f">= fileSizeKB ({file_kb})")
    out["log_file_bytes"] = file_kb * 1024
    out["log_total_bytes"] = total_kb * 1024
    for key, only in _ONLY_VALUE.items():
        value = cfg.get(key, only)
        if not isinstance(value, str) or value.upper() != only:
            raise ValidationError(f"logging.{key}", "not supported by Sprig", value=value,
                                  source=source, allowed=only)
    return out


def _kilobytes(cfg: Mapping[str, Any], key: str, default: int, source: str) -> int:
    value = cfg.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError(f"logging.{key}", "must be a whole number of kilobytes >= 1",
                              value=value, source=source, allowed="an integer >= 1")
    return value
_CONSOLE_KEYS = ("enabled", "port", "bindAddress", "tls")


def _console(cfg: object, mqtt: object, source: str) -> ConsoleSettings:
    """The ``console`` section: every key honoured or refused. A console reachable from the
    network must use TLS: its session cookie would otherwise cross the network in clear."""
    allowed = "{" + ", ".join(f"{k}: ..." for k in _CONSOLE_KEYS) + "}"
    if not isinstance(cfg, Mapping):
        raise ValidationError("console", "must be a mapping", value=cfg, source=source,
                              allowed=allowed)
    unknown = sorted(str(k) for k in set(cfg) - set(_CONSOLE_KEYS))
    if unknown:
        raise ValidationError(f"console.{unknown[0]}", "unknown key", source=source,
                              allowed=", ".join(_CONSOLE_KEYS))
    enabled = cfg.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("console.enabled", "must be true or false", value=enabled,
                              source=source, allowed="true, false")
    port = cfg.get("port", 0)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValidationError("console.port", "must be a port number", value=port,
                              source=source, allowed="0..65535 (0 = any free port)")
    bind = cfg.get("bindAddress", "127.0.0.1")
    if bind == "localhost":
        bind = "127.0.0.1"
    try:
        address = ipaddress.ip_address(bind.strip("[]") if isinstance(bind, str) else bind)
    except (ValueError, TypeError):
        raise ValidationError("console.bindAddress", "must be an IP address", value=bind,
                              source=source, allowed="127.0.0.1 (default), ::1, localhost, "
                              "or an address of this device (with tls)") from None
    tls = _console_tls(cfg.get("tls"), mqtt, source)
    if not address.is_loopback and tls is None:
        raise ValidationError("console.bindAddress", "a console reachable from the network "
                              "needs tls (its session cookie would travel in clear)",
                              value=bind, source=source,
                              allowed="a loopback address, or set console.tls")
    return ConsoleSettings(enabled, port, str(address), tls)


def _console_tls(tls: object, mqtt: object, source: str) -> tuple[str, str] | None:
    if tls is None or tls is False:
        return None
    allowed = "{certPath: PEM file, keyPath: PEM file}, or {} for mqtt.tls's pair"
    if tls is True:
        tls = {}
    if not isinstance(tls, Mapping):
        raise ValidationError("console.tls", "must be a mapping", value=tls, source=source,
                              allowed=allowed)
    unknown = sorted(str(k) for k in set(tls) - {"certPath", "keyPath"})
    if unknown:
        raise ValidationError(f"console.tls.{unknown[0]}", "unknown key", source=source,
                              allowed="certPath, keyPath")
    cert, key = tls.get("certPath"), tls.get("keyPath")
    for name, value in (("certPath", cert), ("keyPath", key)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValidationError(f"console.tls.{name}", "must be a file path", value=value,
                                  source=source, allowed="a PEM file (relative: in the root)")
    if (cert is None) != (key is None):
        missing = "keyPath" if key is None else "certPath"
        raise ValidationError(f"console.tls.{missing}", "certPath and keyPath go together",
                              source=source, allowed=allowed)
    if cert is None:
        device = mqtt.get("tls") if isinstance(mqtt, Mapping) else None
        if not isinstance(device, Mapping) or not device.get("certPath") \
                or not device.get("keyPath"):
            raise ValidationError("console.tls", "no certificate given and mqtt.tls has no "
                                  "certPath/keyPath (the device's certificate) to use",
                                  value=dict(tls), source=source, allowed=allowed)
        return ("", "")
    return (str(cert), str(key))


_LIMIT_FIELDS = {RECIPE_KEY: ("recipe_max_bytes", 1024),
                 BYTES_KEY: ("artifacts_max_bytes", 1024),
                 FILES_KEY: ("artifacts_max_files", 1)}


def _deployment_limits(value: object, source: str) -> StagingLimits:
    """``deploymentLimits``: each key a whole number at or above a floor that still lets a
    small component deploy; unknown keys are refused like any other."""
    allowed = ", ".join(_LIMIT_FIELDS)
    if not isinstance(value, Mapping):
        raise ValidationError(CONFIG_SECTION, "must be a mapping", value=value, source=source,
                              allowed=allowed)
    unknown = sorted(set(value) - set(_LIMIT_FIELDS))
    if unknown:
        raise ValidationError(f"{CONFIG_SECTION}.{unknown[0]}", "unknown key", source=source,
                              allowed=allowed)
    kwargs: dict[str, int] = {}
    for key, (name, floor) in _LIMIT_FIELDS.items():
        if key not in value:
            continue
        n = value[key]
        if not isinstance(n, int) or isinstance(n, bool) or n < floor:
            raise ValidationError(f"{CONFIG_SECTION}.{key}", "must be a whole number", value=n,
                                  source=source, allowed=f"an integer >= {floor}")
        kwargs[name] = n
    return StagingLimits(**kwargs)


def _string(data: Mapping[str, Any], key: str, source: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValidationError(key, "must be a non-empty string", value=value, source=source,
                              allowed="a string")
    return value


def parse_posix_user(value: object, path: str, source: str) -> RunAs:
    """``user[:group]`` as Greengrass's ``posixUser``."""
    if not isinstance(value, str) or not value or value.count(":") > 1:
        raise ValidationError(path, "must be user or user:group", value=value, source=source,
                              allowed="a user name (or uid), optionally :group")
    user, _, group = value.partition(":")
    if not user:
        raise ValidationError(path, "the user is empty", value=value, source=source,
                              allowed="user or user:group")
    return RunAs(user, group or None)


def is_root() -> bool:
    return os.geteuid() == 0
