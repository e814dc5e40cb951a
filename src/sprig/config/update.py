"""A configuration update (MERGE + RESET) and the parsers for the shapes users write it in.

Two shapes reach Sprig:

* the Greengrass CLI shape (``sprig deployment create --update-config``)::

      {"<component>": {"MERGE": {...}, "RESET": ["/path", ...]}}

* the CreateDeployment API shape (``components.<name>.configurationUpdate``)::

      {"merge": "<serialized JSON object>", "reset": ["/path", ...]}

Both become one :class:`ConfigUpdate`. Everything is checked here, before any state changes, and
every refusal names the field, the value and what is allowed.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sprig.config.pointer import MAX_POINTER_LENGTH, POINTER_SYNTAX, parse_pointer
from sprig.errors import ValidationError

#: CreateDeployment limits ``merge`` to 1 - 10,485,760 characters.
MAX_MERGE_CHARS: Final = 10_485_760
#: Component names are 1 - 128 characters (Greengrass API).
MAX_COMPONENT_NAME: Final = 128

CLI_KEYS: Final = ("MERGE", "RESET")
API_KEYS: Final = ("merge", "reset")


@dataclass(frozen=True)
class ConfigUpdate:
    """One deployment's change to one component's configuration.

    ``reset`` is applied before ``merge`` (Greengrass order). ``merge`` is ``None`` when the
    update has no MERGE; it is a private deep copy and is never mutated.
    """

    merge: Mapping[str, Any] | None = None
    reset: tuple[str, ...] = field(default=())

    @property
    def is_noop(self) -> bool:
        return self.merge is None and not self.reset

    @property
    def resets_everything(self) -> bool:
        """True when RESET holds ``""``: everything applied before this update is forgotten."""
        return "" in self.reset

    def to_document(self) -> dict[str, Any]:
        """The CLI shape for this update (``MERGE``/``RESET`` present only when set)."""
        doc: dict[str, Any] = {}
        if self.merge is not None:
            doc["MERGE"] = copy.deepcopy(dict(self.merge))
        if self.reset:
            doc["RESET"] = list(self.reset)
        return doc

    @classmethod
    def from_document(
        cls, doc: object, *, path: str = "", source: str | None = None
    ) -> ConfigUpdate:
        """Parse ``{"MERGE": {...}, "RESET": [...]}`` (both optional)."""
        if not isinstance(doc, dict):
            raise ValidationError(
                path, "a configuration update must be an object", value=doc, has_value=True,
                allowed='{"MERGE": {...}, "RESET": ["/pointer", ...]}', source=source,
            )
        for key in doc:
            if key not in CLI_KEYS:
                hint = " (the Greengrass CLI shape uses upper case)" if (
                    isinstance(key, str) and key.upper() in CLI_KEYS
                ) else ""
                raise ValidationError(
                    _join(path, str(key)), f"unknown key{hint}", value=key,
                    allowed=", ".join(CLI_KEYS), source=source,
                )
        merge: dict[str, Any] | None = None
        if "MERGE" in doc:
            merge = _check_merge(doc["MERGE"], _join(path, "MERGE"), source)
        reset = _check_reset(doc.get("RESET", []), _join(path, "RESET"), source)
        return cls(merge=merge, reset=reset)


def parse_update_document(doc: object, source: str) -> dict[str, ConfigUpdate]:
    """Parse the Greengrass CLI ``--update-config`` document into one update per component."""
    if not isinstance(doc, dict):
        raise ValidationError(
            "", "the configuration update document must be an object keyed by component name",
            value=doc, has_value=True,
            allowed='{"<component>": {"MERGE": {...}, "RESET": [...]}}', source=source,
        )
    updates: dict[str, ConfigUpdate] = {}
    for name, body in doc.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_COMPONENT_NAME:
            raise ValidationError(
                "", "invalid component name", value=name, has_value=True,
                allowed=f"a string of 1-{MAX_COMPONENT_NAME} characters", source=source,
            )
        updates[name] = ConfigUpdate.from_document(body, path=name, source=source)
    return updates


def parse_api_configuration_update(
    doc: object, *, path: str = "configurationUpdate", source: str | None = None
) -> ConfigUpdate:
    """Parse the CreateDeployment shape ``{"merge": "<json>", "reset": [...]}``."""
    if not isinstance(doc, dict):
        raise ValidationError(
            path, "must be an object", value=doc, has_value=True,
            allowed='{"merge": "<serialized JSON object>", "reset": ["/pointer", ...]}',
            source=source,
        )
    for key in doc:
        if key not in API_KEYS:
            raise ValidationError(
                _join(path, str(key)), "unknown key", value=key, allowed=", ".join(API_KEYS),
                source=source,
            )
    merge: dict[str, Any] | None = None
    if "merge" in doc:
        text = doc["merge"]
        where = _join(path, "merge")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_MERGE_CHARS:
            raise ValidationError(
                where, "must be a serialized JSON object", value=_short(text), has_value=True,
                allowed=f"a string of 1-{MAX_MERGE_CHARS} characters", source=source,
            )
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise ValidationError(
                where, f"is not valid JSON ({exc})", value=_short(text),
                allowed="a serialized JSON object", source=source,
            ) from None
        merge = _check_merge(parsed, where, source)
    reset = _check_reset(doc.get("reset", []), _join(path, "reset"), source)
    return ConfigUpdate(merge=merge, reset=reset)


def _check_merge(value: object, path: str, source: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(
            path, "MERGE must be an object", value=_short(value), has_value=True,
            allowed="a JSON object whose members are merged into the configuration",
            source=source,
        )
    _check_json(value, path, source)
    size = len(json.dumps(value, separators=(",", ":")))
    if size > MAX_MERGE_CHARS:
        raise ValidationError(
            path, f"MERGE is too large ({size} characters serialized)",
            allowed=f"at most {MAX_MERGE_CHARS} characters", source=source,
        )
    return copy.deepcopy(value)


def _check_reset(value: object, path: str, source: str | None) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValidationError(
            path, "RESET must be a list of JSON pointers", value=_short(value), has_value=True,
            allowed='a list such as ["", "/key", "/a/b"]', source=source,
        )
    pointers = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, str):
            raise ValidationError(
                where, "a RESET entry must be a string JSON pointer", value=item, has_value=True,
                allowed=POINTER_SYNTAX, source=source,
            )
        if len(item) > MAX_POINTER_LENGTH:
            raise ValidationError(
                where, f"JSON pointer is too long ({len(item)} characters)", value=_short(item),
                allowed=f"at most {MAX_POINTER_LENGTH} characters", source=source,
            )
        parse_pointer(item, path=where, source=source)
        pointers.append(item)
    return tuple(pointers)


def _check_json(value: object, path: str, source: str | None) -> None:
    """Refuse what JSON cannot carry (YAML input can): non-string keys, NaN, sets."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(
                path, "not a finite number", value=value, allowed="finite JSON numbers",
                source=source,
            )
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", source)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    path, "object keys must be strings", value=key, has_value=True,
                    allowed="string keys", source=source,
                )
            _check_json(item, _join(path, key), source)
        return
    raise ValidationError(
        path, f"not a JSON value ({type(value).__name__})", value=_short(value),
        allowed="object, array, string, number, true/false or null", source=source,
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _short(value: object) -> object:
    """Keep huge values out of error messages."""
    text = repr(value)
    return value if len(text) <= 200 else text[:200] + "..."
