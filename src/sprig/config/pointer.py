"""JSON pointers (RFC 6901) over plain JSON documents (dict / list / scalars).

Greengrass addresses configuration by JSON pointer in RESET lists and in recipe variables
(``{configuration:/a/b}``), so one strict parser lives here. ``""`` is the whole document;
every other pointer starts with ``/``; ``~1`` means ``/`` and ``~0`` means ``~`` inside a token.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Final

from sprig.errors import ValidationError

#: Greengrass limits each RESET pointer to 256 characters (CreateDeployment API).
MAX_POINTER_LENGTH: Final = 256


class Missing(enum.Enum):
    """Marker type for "no value at this pointer" (``None`` is a legitimate JSON null)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING

POINTER_SYNTAX = "'' (whole document) or '/'-separated tokens, with '~0' for '~' and '~1' for '/'"


def parse_pointer(text: object, *, path: str = "", source: str | None = None) -> tuple[str, ...]:
    """Split a pointer into unescaped reference tokens; ``""`` gives ``()``.

    Raises :class:`ValidationError` naming ``path`` (where the pointer was found) when ``text`` is
    not a string, does not start with ``/`` or holds a ``~`` not followed by ``0`` or ``1``.
    """
    if not isinstance(text, str):
        raise ValidationError(
            path, "a JSON pointer must be a string", value=text, has_value=True,
            allowed=POINTER_SYNTAX, source=source,
        )
    if text == "":
        return ()
    if not text.startswith("/"):
        raise ValidationError(
            path, "a JSON pointer must be '' or start with '/'", value=text,
            allowed=POINTER_SYNTAX, source=source,
        )
    tokens = []
    for raw in text[1:].split("/"):
        tokens.append(_unescape(raw, text, path, source))
    return tuple(tokens)


def _unescape(raw: str, text: str, path: str, source: str | None) -> str:
    if "~" not in raw:
        return raw
    out = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "~":
            nxt = raw[i + 1] if i + 1 < len(raw) else ""
            if nxt not in ("0", "1"):
                raise ValidationError(
                    path, f"invalid escape '~{nxt}' in JSON pointer", value=text,
                    allowed=POINTER_SYNTAX, source=source,
                )
            out.append("~" if nxt == "0" else "/")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def escape_token(token: str) -> str:
    """Escape one reference token (``~`` first, so ``~1`` round-trips)."""
    return token.replace("~", "~0").replace("/", "~1")


def format_pointer(tokens: Sequence[str]) -> str:
    """The pointer text for ``tokens``; inverse of :func:`parse_pointer`."""
    return "".join("/" + escape_token(t) for t in tokens)


def list_index(token: str, length: int) -> int | None:
    """The list index a token names (RFC 6901: decimal, no leading zeros), or None."""
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        return None
    index = int(token)
    return index if index < length else None


def resolve(doc: Any, tokens: Sequence[str]) -> Any:
    """The value at ``tokens`` in ``doc``, or :data:`MISSING` when there is none."""
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                return MISSING
            node = node[token]
        elif isinstance(node, list):
            index = list_index(token, len(node))
            if index is None:
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def crosses_list(doc: Any, tokens: Sequence[str]) -> bool:
    """True when following ``tokens`` in ``doc`` would step *into* a list.

    Greengrass can reset only whole lists, so a RESET pointer for which this holds (in the
    current configuration or in the defaults) is refused.
    """
    node = doc
    for token in tokens:
        if isinstance(node, list):
            return True
        if not isinstance(node, dict) or token not in node:
            return False
        node = node[token]
    return False
