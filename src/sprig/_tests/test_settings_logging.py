"""config.yaml ``logging``: Greengrass's nucleus keys, each honoured or refused."""

from __future__ import annotations

from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.settings import CoreSettings


def load(logging_cfg: Any) -> CoreSettings:
    return CoreSettings.from_mapping({"logging": logging_cfg}, "config.yaml")


def test_greengrass_defaults() -> None:
    for settings in (CoreSettings.from_mapping({}, "config.yaml"), load({})):
        assert settings.log_level == "INFO"
        assert settings.log_file_bytes == 1024 * 1024           # fileSizeKB 1024
        assert settings.log_total_bytes == 10240 * 1024         # totalLogsSizeKB 10240


def test_every_key_is_read() -> None:
    settings = load({"level": "warn", "fileSizeKB": 64, "totalLogsSizeKB": 256,
                     "format": "TEXT", "outputType": "FILE"})
    assert (settings.log_level, settings.log_file_bytes, settings.log_total_bytes) == (
        "WARN", 64 * 1024, 256 * 1024)


@pytest.mark.parametrize(("cfg", "path", "words"), [
    ({"fileSizeKB": 0}, "logging.fileSizeKB", "integer >= 1"),
    ({"fileSizeKB": "1024"}, "logging.fileSizeKB", "integer >= 1"),
    ({"fileSizeKB": 1.5}, "logging.fileSizeKB", "integer >= 1"),
    ({"totalLogsSizeKB": True}, "logging.totalLogsSizeKB", "integer >= 1"),
    ({"fileSizeKB": 2048, "totalLogsSizeKB": 1024}, "logging.totalLogsSizeKB",
     ">= fileSizeKB (2048)"),
    ({"fileSizeKB": 20480}, "logging.totalLogsSizeKB", ">= fileSizeKB (20480)"),
    ({"format": "JSON"}, "logging.format", "TEXT"),
    ({"outputType": "CONSOLE"}, "logging.outputType", "FILE"),
    ({"outputDirectory": "/tmp/logs"}, "logging.outputDirectory",
     "level, fileSizeKB, totalLogsSizeKB, format, outputType"),
    ({"level": "TRACE"}, "logging.level", "DEBUG, INFO, WARN, WARNING, ERROR"),
    ("INFO", "logging", "level: ..."),
])
def test_what_cannot_be_honoured_is_refused_naming_it(cfg: Any, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        load(cfg)
    assert info.value.path == path
    assert words in str(info.value) and "config.yaml" in str(info.value)
