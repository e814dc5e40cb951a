"""config.yaml ``console``: every key honoured or refused, naming the key, value and allowed."""

from __future__ import annotations

from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.settings import ConsoleSettings, CoreSettings


def load(console: Any, **more: Any) -> ConsoleSettings:
    return CoreSettings.from_mapping({"console": console, **more}, "config.yaml").console


def test_defaults_enabled_on_loopback_any_port_plain_http() -> None:
    for settings in (CoreSettings.from_mapping({}, "config.yaml").console, load({})):
        assert settings == ConsoleSettings(True, 0, "127.0.0.1", None)
        assert settings.loopback


def test_every_key_is_read() -> None:
    assert load({"enabled": False}).enabled is False
    assert load({"port": 1441}).port == 1441
    assert load({"bindAddress": "localhost"}).bind_address == "127.0.0.1"
    assert load({"bindAddress": "::1"}).bind_address == "::1"
    assert load({"tls": {"certPath": "c.pem", "keyPath": "k.pem"}}).tls == ("c.pem", "k.pem")
    device = {"host": "broker", "tls": {"certPath": "d.crt", "keyPath": "d.key"}}
    assert load({"tls": {}}, mqtt=device).tls == ("", "")      # the device's certificate
    wide = load({"bindAddress": "0.0.0.0", "tls": {"certPath": "c", "keyPath": "k"}})
    assert wide.bind_address == "0.0.0.0" and not wide.loopback


@pytest.mark.parametrize(("console", "field", "words"), [
    ("yes", "console", "must be a mapping"),
    ({"enable": True}, "console.enable", "unknown key"),
    ({"enabled": "true"}, "console.enabled", "true or false"),
    ({"port": 70000}, "console.port", "0..65535"),
    ({"port": True}, "console.port", "port number"),
    ({"bindAddress": "my-host"}, "console.bindAddress", "IP address"),
    ({"bindAddress": "0.0.0.0"}, "console.bindAddress", "needs tls"),
    ({"tls": {"certPath": "c.pem"}}, "console.tls.keyPath", "go together"),
    ({"tls": {"cert": "c.pem"}}, "console.tls.cert", "unknown key"),
    ({"tls": {}}, "console.tls", "mqtt.tls"),
    ({"tls": "on"}, "console.tls", "must be a mapping"),
])
def test_bad_values_are_refused_by_name(console: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as e:
        load(console)
    assert e.value.path == field, e.value
    assert words in str(e.value) and "config.yaml" in str(e.value)
