"""Readers for recipe fields: case-insensitive keys, strict types, errors that name the path.

Greengrass matches recipe keys without regard to case (AWS-generated recipes write ``Uri``,
``startup``, ``setenv``; the docs write ``URI``, ``Startup``, ``Setenv``), so :class:`Obj` maps
every key to its canonical spelling. A key it does not know is ignored, as the nucleus ignores it
(its recipe reader disables Jackson's ``FAIL_ON_UNKNOWN_PROPERTIES``), but never silently: it
becomes a warning (with "did you mean" for a near miss) that the deployment shows in its status
and the core log. Every converter raises
:class:`~sprig.errors.ValidationError` naming the field path, the value and what is allowed; the
caller adds the file name.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sprig.errors import ValidationError
from sprig.suggest import did_you_mean

E = TypeVar("E", bound=enum.StrEnum)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def wrong_type(path: str, value: Any, allowed: str) -> ValidationError:
    return ValidationError(path, f"must be {allowed}, not {type_name(value)}",
                           value=value, allowed=allowed, has_value=True)


class Obj:
    """A recipe object whose keys are matched case-insensitively against ``known`` keys.

    An unknown key is appended to ``warnings`` (and ignored) when a list is given, else refused.
    """

    def __init__(self, data: Any, path: str, known: Sequence[str], *,
                 extra: Sequence[str] = (), warnings: list[str] | None = None) -> None:
        if not isinstance(data, Mapping):
            raise wrong_type(path, data, "an object")
        self.path = path
        # Known keys win over extra ones (selection keys) that spell the same word.
        canonical = {k.lower(): k for k in (*extra, *known)}
        self.values: dict[str, Any] = {}
        self.spelled: dict[str, str] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise ValidationError(join(path, str(key)), "keys must be strings",
                                      value=key, allowed="a string key", has_value=True)
            name = canonical.get(key.lower())
            if name is None:
                if warnings is None:
                    raise ValidationError(join(path, key), "unknown key", value=key,
                                          allowed=", ".join(known), has_value=True)
                warnings.append(unknown_key_warning(join(path, key), key, known))
                continue
            if name in self.values:
                raise ValidationError(
                    join(path, key), f"given twice (as {self.spelled[name]!r} and {key!r}; "
                    "keys are case-insensitive)", value=key, allowed=f"one {name} key")
            self.values[name] = value
            self.spelled[name] = key

    def get(self, key: str) -> Any:
        """The value of ``key`` or None when absent (YAML's empty value also reads as None)."""
        return self.values.get(key)

    def at(self, key: str) -> str:
        """The path of ``key`` as the user spelled it."""
        return join(self.path, self.spelled.get(key, key))

    def require(self, key: str) -> Any:
        value = self.values.get(key)
        if value is None:
            raise ValidationError(self.at(key), "is required", allowed=f"a {key} value")
        return value


def unknown_key_warning(path: str, key: str, known: Sequence[str]) -> str:
    """The warning for an ignored recipe key: where, a near miss if any, and the known keys."""
    return (f"{path}: unknown key ignored{did_you_mean(key, known)} (Greengrass ignores it "
            f"too); known keys here: {', '.join(known)}")


def string(value: Any, path: str, *, allowed: str = "a string", nonempty: bool = True) -> str:
    if not isinstance(value, str):
        raise wrong_type(path, value, allowed)
    if nonempty and not value.strip():
        raise ValidationError(path, "must not be empty", value=value, allowed=allowed)
    return value


def optional_string(value: Any, path: str) -> str | None:
    return None if value is None else string(value, path, nonempty=False)


def boolean(value: Any, path: str) -> bool:
    """A boolean; the strings ``true``/``false`` are accepted as Greengrass coerces them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise wrong_type(path, value, "true or false")


def positive_number(value: Any, path: str) -> float:
    allowed = "a positive number of seconds"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong_type(path, value, allowed)
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(path, "must be positive", value=value, allowed=allowed)
    return float(value)


def choice(value: Any, path: str, enum_type: type[E]) -> E:
    """An enum member, matched case-insensitively (``zip`` reads as ``ZIP``)."""
    allowed = " | ".join(str(m) for m in enum_type)
    if not isinstance(value, str):
        raise wrong_type(path, value, allowed)
    for member in enum_type:
        if str(member).lower() == value.strip().lower():
            return member
    raise ValidationError(path, "is not a known value", value=value, allowed=allowed)


def env_value(value: Any, path: str) -> str:
    """A ``Setenv`` value: strings as is; numbers and booleans as their JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    raise wrong_type(path, value, "a string, number or boolean")


def setenv(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise wrong_type(path, value, "an object of environment variables")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValidationError(join(path, str(key)), "is not a valid environment variable name",
                                  value=key, allowed="a non-empty name without '='",
                                  has_value=True)
        out[key] = env_value(item, join(path, key))
    return out


def json_value(value: Any, path: str) -> Any:
    """A deep copy of ``value`` made of JSON types only (configuration must be JSON)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(path, "is not a finite number", value=value,
                                  allowed="a JSON number")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(join(path, str(key)), "keys must be strings", value=key,
                                      allowed="a string key", has_value=True)
            out[key] = json_value(item, join(path, key))
        return out
    if isinstance(value, list | tuple):
        return [json_value(item, index(path, i)) for i, item in enumerate(value)]
    raise wrong_type(path, value, "a JSON value (object, list, string, number, boolean, null)")


def string_list(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise wrong_type(path, value, "a list of strings")
    return tuple(string(v, index(path, i)) for i, v in enumerate(value))
