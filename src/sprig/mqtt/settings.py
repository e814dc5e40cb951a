"""The ``mqtt`` section of ``config.yaml``: which broker the bridge talks to, and how.

::

    mqtt:
      host: abc123-ats.iot.eu-west-1.amazonaws.com   # no host: no bridge, Sprig works locally
      port: 8883                 # default 8883 with tls, else 1883
      clientId: my-thing         # default: the thing name
      protocol: "3.1.1"          # or "5"
      keepAliveSeconds: 60
      maxMessageSizeInBytes: 131072          # max 2621440 (Greengrass's limits)
      tls: {caPath: AmazonRootCA1.pem, certPath: device.pem.crt, keyPath: private.pem.key}
      spooler: {maxSizeInBytes: 2621440, keepQos0WhenOffline: false}
      reconnect: {minSeconds: 1, maxSeconds: 120}
      operationTimeoutSeconds: 10    # connect (CONNACK), SUBACK, PUBACK
      maxPublishRetry: 100           # -1: retry forever

AWS IoT Core needs mutual TLS: a CA to check the endpoint, plus the device certificate and its
private key. Every problem is reported with its field path, the value and what is allowed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sprig.errors import ValidationError

DEFAULT_TLS_PORT = 8883
DEFAULT_PLAIN_PORT = 1883
DEFAULT_KEEPALIVE = 60
DEFAULT_MAX_MESSAGE = 131072
MAX_MAX_MESSAGE = 2621440
DEFAULT_SPOOL_BYTES = 2621440


class MqttProtocol(enum.StrEnum):
    V311 = "3.1.1"
    V5 = "5"


@dataclass(frozen=True)
class TlsSettings:
    """Files for TLS. No ``ca_path``: the system's trusted CAs. Cert and key go together."""

    ca_path: Path | None = None
    cert_path: Path | None = None
    key_path: Path | None = None


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    protocol: MqttProtocol = MqttProtocol.V311
    keep_alive_seconds: int = DEFAULT_KEEPALIVE
    max_message_size: int = DEFAULT_MAX_MESSAGE
    spool_max_bytes: int = DEFAULT_SPOOL_BYTES
    keep_qos0_when_offline: bool = False
    tls: TlsSettings | None = None
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 120.0
    operation_timeout_seconds: float = 10.0
    max_publish_retry: int = 100

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None, source: str, *,
                     thing_name: str, base_dir: Path | None = None,
                     path: str = "mqtt") -> MqttSettings | None:
        """Parse the ``mqtt`` section; ``None`` when no broker is configured (no ``host``).

        Relative TLS file paths are resolved against ``base_dir`` (the root directory).
        """
        if cfg is None:
            return None
        p = _Parser(source, path)
        if not isinstance(cfg, Mapping):
            raise p.error("", "must be an object", cfg, "{host, port, tls, ...}")
        p.known(cfg, {"host", "port", "clientId", "protocol", "keepAliveSeconds",
                      "maxMessageSizeInBytes", "tls", "spooler", "reconnect",
                      "operationTimeoutSeconds", "maxPublishRetry"})
        host = cfg.get("host")
        if host is None or host == "":
            return None
        if not isinstance(host, str) or any(c.isspace() for c in host):
            raise p.error("host", "must be a host name or IP address", host,
                          "e.g. abc123-ats.iot.us-east-1.amazonaws.com")
        tls = _parse_tls(p, cfg.get("tls"), base_dir)
        port = p.integer(cfg, "port", DEFAULT_TLS_PORT if tls else DEFAULT_PLAIN_PORT, 1, 65535)
        client_id = cfg.get("clientId", thing_name)
        if not isinstance(client_id, str) or not client_id or len(client_id.encode()) > 128:
            raise p.error("clientId", "must be a non-empty string of at most 128 bytes",
                          client_id, "default: the thing name")
        proto = cfg.get("protocol", "3.1.1")
        proto = str(proto) if isinstance(proto, int | float) and not isinstance(
            proto, bool) else proto
        if proto in ("5.0", "mqtt5"):
            proto = "5"
        if proto in ("3", "mqtt3", "3.1"):
            proto = "3.1.1"
        if proto not in MqttProtocol.__members__.values():
            raise p.error("protocol", "unknown MQTT protocol version", cfg.get("protocol"),
                          "\"3.1.1\" or \"5\"")
        spooler = cfg.get("spooler") or {}
        if not isinstance(spooler, Mapping):
            raise p.error("spooler", "must be an object", spooler,
                          "{maxSizeInBytes, keepQos0WhenOffline}")
        p.known(spooler, {"maxSizeInBytes", "keepQos0WhenOffline"}, "spooler")
        keep0 = spooler.get("keepQos0WhenOffline", False)
        if not isinstance(keep0, bool):
            raise p.error("spooler.keepQos0WhenOffline", "must be true or false", keep0,
                          "true, false")
        reconnect = cfg.get("reconnect") or {}
        if not isinstance(reconnect, Mapping):
            raise p.error("reconnect", "must be an object", reconnect, "{minSeconds, maxSeconds}")
        p.known(reconnect, {"minSeconds", "maxSeconds"}, "reconnect")
        rmin = p.number(reconnect, "minSeconds", 1.0, 0.01, 3600, prefix="reconnect.")
        rmax = p.number(reconnect, "maxSeconds", 120.0, rmin, 86400, prefix="reconnect.")
        return cls(
            host=host,
            port=port,
            client_id=client_id,
            protocol=MqttProtocol(proto),
            keep_alive_seconds=p.integer(cfg, "keepAliveSeconds", DEFAULT_KEEPALIVE, 0, 65535),
            max_message_size=p.integer(cfg, "maxMessageSizeInBytes", DEFAULT_MAX_MESSAGE, 1,
                                       MAX_MAX_MESSAGE),
            spool_max_bytes=p.integer(spooler, "maxSizeInBytes", DEFAULT_SPOOL_BYTES, 0,
                                      2**40, prefix="spooler."),
            keep_qos0_when_offline=keep0,
            tls=tls,
            reconnect_min_seconds=rmin,
            reconnect_max_seconds=rmax,
            operation_timeout_seconds=p.number(cfg, "operationTimeoutSeconds", 10.0, 0.1, 3600),
            max_publish_retry=p.integer(cfg, "maxPublishRetry", 100, -1, 2**31 - 1),
        )


class _Parser:
    def __init__(self, source: str, path: str) -> None:
        self.source = source
        self.path = path

    def error(self, field: str, message: str, value: Any, allowed: str) -> ValidationError:
        where = f"{self.path}.{field}" if field else self.path
        return ValidationError(where, message, value=value, allowed=allowed,
                               source=self.source, has_value=True)

    def known(self, cfg: Mapping[str, Any], keys: set[str], prefix: str = "") -> None:
        for k in cfg:
            if k not in keys:
                raise self.error(f"{prefix}.{k}" if prefix else str(k), "unknown setting", k,
                                 ", ".join(sorted(keys)))

    def integer(self, cfg: Mapping[str, Any], key: str, default: int, lo: int, hi: int, *,
                prefix: str = "") -> int:
        v = cfg.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.error(prefix + key, "out of range or not an integer", v,
                             f"an integer from {lo} to {hi} (default {default})")
        return v

    def number(self, cfg: Mapping[str, Any], key: str, default: float, lo: float, hi: float,
               *, prefix: str = "") -> float:
        v = cfg.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise self.error(prefix + key, "out of range or not a number", v,
                             f"a number from {lo:g} to {hi:g} (default {default:g})")
        return float(v)


def _parse_tls(p: _Parser, tls: Any, base_dir: Path | None) -> TlsSettings | None:
    if tls is None or tls is False:
        return None
    if tls is True:
        return TlsSettings()
    if not isinstance(tls, Mapping):
        raise p.error("tls", "must be an object", tls, "{caPath, certPath, keyPath}")
    p.known(tls, {"caPath", "certPath", "keyPath"}, "tls")
    files: dict[str, Path | None] = {}
    for key in ("caPath", "certPath", "keyPath"):
        v = tls.get(key)
        if v is None:
            files[key] = None
            continue
        if not isinstance(v, str) or not v:
            raise p.error(f"tls.{key}", "must be a file path", v, "a readable PEM file")
        path = Path(v).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise p.error(f"tls.{key}", "file not found", str(path), "a readable PEM file")
        files[key] = path
    if (files["certPath"] is None) != (files["keyPath"] is None):
        missing = "keyPath" if files["keyPath"] is None else "certPath"
        raise p.error(f"tls.{missing}", "certPath and keyPath go together (mutual TLS, as AWS "
                      "IoT Core requires)", None, "both a certificate and its private key")
    return TlsSettings(files["caPath"], files["certPath"], files["keyPath"])
