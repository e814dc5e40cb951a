"""Primitive validators shared by the import parsers.

Each checker takes the value, its field path and the document it came from, and either returns
the value typed or raises :class:`sprig.errors.ValidationError` naming the field, the value and
what is allowed. Keeping them tiny and pure lets every parser report errors the same way.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from sprig.errors import ValidationError

E = TypeVar("E", bound=StrEnum)

INT_MAX = 2147483647
PATH_MAX = 4096       # longest volume/device path Greengrass accepts [S3 common.Constants]
FILENAME_MAX = 255    # longest path component


def fail(path: str, message: str, source: str | None, *, value: Any = None,
         allowed: str | None = None, has_value: bool = True) -> ValidationError:
    """Build (not raise) the error, so callers write ``raise fail(...)`` and mypy sees it."""
    return ValidationError(path, message, value=value, allowed=allowed, source=source,
                           has_value=has_value)


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def obj(value: Any, path: str, source: str | None, keys: Iterable[str] | None = None,
        ) -> dict[str, Any]:
    """A JSON object; with ``keys``, any other key is refused."""
    if not isinstance(value, dict):
        raise fail(path, f"must be an object, not {type_name(value)}", source, value=value)
    if keys is not None:
        known = list(keys)
        for key in value:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                raise fail(where, "unknown key", source, value=key, allowed=", ".join(known))
    return value


def string(value: Any, path: str, source: str | None, *, min_len: int = 1,
           max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise fail(path, f"must be a string, not {type_name(value)}", source, value=value)
    if len(value) < min_len:
        raise fail(path, f"must be at least {min_len} character(s) long", source, value=value)
    if max_len is not None and len(value) > max_len:
        raise fail(path, f"must be at most {max_len} characters long", source,
                   value=value if len(value) < 200 else value[:200] + "...")
    return value


def integer(value: Any, path: str, source: str | None, lo: int, hi: int = INT_MAX) -> int:
    """An integer in [lo, hi]; booleans and fractions are refused (the AWS API types are int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(path, f"must be an integer, not {type_name(value)}", source, value=value,
                   allowed=f"{lo}..{hi}")
    if not lo <= value <= hi:
        raise fail(path, "is out of range", source, value=value, allowed=f"{lo}..{hi}")
    return value


def boolean(value: Any, path: str, source: str | None) -> bool:
    if not isinstance(value, bool):
        raise fail(path, f"must be a boolean, not {type_name(value)}", source, value=value,
                   allowed="true, false")
    return value


def enum(value: Any, kind: type[E], path: str, source: str | None) -> E:
    allowed = ", ".join(m.value for m in kind)
    if not isinstance(value, str) or value not in {m.value for m in kind}:
        raise fail(path, "is not a valid value", source, value=value, allowed=allowed)
    return kind(value)


def array(value: Any, path: str, source: str | None) -> list[Any]:
    if not isinstance(value, list):
        raise fail(path, f"must be an array, not {type_name(value)}", source, value=value)
    return value


def string_list(value: Any, path: str, source: str | None) -> list[str]:
    items = array(value, path, source)
    return [string(v, f"{path}[{i}]", source, min_len=0) for i, v in enumerate(items)]


def string_map(value: Any, path: str, source: str | None) -> dict[str, str]:
    """A map of non-empty string keys to string values (environment variables, attributes)."""
    items = obj(value, path, source)
    out: dict[str, str] = {}
    for key, val in items.items():
        if not key:
            raise fail(path, "keys must not be empty", source, value=key)
        out[key] = string(val, f"{path}.{key}", source, min_len=0)
    return out


def abs_path(value: Any, path: str, source: str | None) -> str:
    """An absolute POSIX path within PATH_MAX and FILENAME_MAX, returned normalised."""
    text = string(value, path, source, max_len=PATH_MAX)
    if not text.startswith("/"):
        raise fail(path, "must be an absolute path", source, value=text,
                   allowed="a path starting with /")
    if "\0" in text:
        raise fail(path, "must not contain a NUL character", source, value=text)
    for part in text.split("/"):
        if len(part) > FILENAME_MAX:
            raise fail(path, f"has a path component longer than {FILENAME_MAX} characters",
                       source, value=text)
    return posixpath.normpath(text).replace("//", "/")


def is_under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or inside it (both normalised absolute paths)."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def mqtt_filter(value: Any, path: str, source: str | None) -> str:
    """An MQTT topic filter: ``#`` only as the whole last level, ``+`` only as a whole level."""
    text = string(value, path, source, max_len=65535)
    levels = text.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise fail(path, "'#' must be the whole last level of a topic filter", source,
                       value=text, allowed="an MQTT topic filter such as a/+/c or a/#")
        if "+" in level and level != "+":
            raise fail(path, "'+' must be a whole level of a topic filter", source,
                       value=text, allowed="an MQTT topic filter such as a/+/c or a/#")
    return text


def get(doc: Mapping[str, Any], key: str) -> Any:
    """``doc[key]``, treating an explicit JSON null like an absent key (as the AWS CLI does)."""
    return doc.get(key)
