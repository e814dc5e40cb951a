from __future__ import annotations

from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.mqtt.settings import MqttProtocol, MqttSettings, TlsSettings


def parse(cfg: object, base: Path | None = None) -> MqttSettings | None:
    return MqttSettings.from_mapping(
        cfg, "config.yaml", thing_name="thing-1", base_dir=base)  # type: ignore[arg-type]


def test_no_host_means_no_bridge() -> None:
    assert parse(None) is None
    assert parse({}) is None
    assert parse({"host": ""}) is None


def test_defaults_plain() -> None:
    s = parse({"host": "localhost"})
    assert s == MqttSettings(host="localhost", port=1883, client_id="thing-1")
    assert s.keep_alive_seconds == 60 and s.max_message_size == 131072
    assert s.spool_max_bytes == 2621440 and s.keep_qos0_when_offline is False
    assert s.protocol is MqttProtocol.V311


def test_tls_defaults_to_8883_and_resolves_paths(tmp_path: Path) -> None:
    for n in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / n).write_text("x")
    s = parse({"host": "x.iot.amazonaws.com", "protocol": 5,
               "tls": {"caPath": "ca.pem", "certPath": "c.pem",
                       "keyPath": str(tmp_path / "k.pem")},
               "spooler": {"maxSizeInBytes": 10, "keepQos0WhenOffline": True}}, tmp_path)
    assert s is not None and s.port == 8883 and s.protocol is MqttProtocol.V5
    assert s.tls == TlsSettings(tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem")
    assert s.spool_max_bytes == 10 and s.keep_qos0_when_offline


@pytest.mark.parametrize(("cfg", "pattern"), [
    ({"host": "h", "port": 0},
     r"config.yaml: mqtt\.port: .*\(got 0\); allowed: an integer from 1 to 65535"),
    ({"host": "h", "port": "x"}, r"mqtt\.port"),
    ({"host": "h", "protocol": "4"}, r"mqtt\.protocol: unknown MQTT protocol version \(got '4'\)"),
    ({"host": "h", "maxMessageSizeInBytes": 2621441}, r"mqtt\.maxMessageSizeInBytes.*2621440"),
    ({"host": "h", "keepAliveSeconds": -1}, r"mqtt\.keepAliveSeconds"),
    ({"host": "h", "tls": {"caPath": "/nonexistent/ca.pem"}}, r"mqtt\.tls\.caPath: file not found"),
    ({"host": "h", "tls": {"certPath": "/etc/hostname"}},
     r"mqtt\.tls\.keyPath: certPath and keyPath go together"),
    ({"host": "h", "spooler": {"keepQos0WhenOffline": "no"}},
     r"mqtt\.spooler\.keepQos0WhenOffline"),
    ({"host": "h", "colour": 1}, r"mqtt\.colour: unknown setting"),
    ({"host": "h", "clientId": ""}, r"mqtt\.clientId"),
    ({"host": "a b"}, r"mqtt\.host"),
    ({"host": "h", "reconnect": {"minSeconds": 5, "maxSeconds": 1}},
     r"mqtt\.reconnect\.maxSeconds"),
])
def test_errors_name_field_value_and_allowed(cfg: object, pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        parse(cfg)
