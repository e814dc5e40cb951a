"""AWS IoT Device Shadow document semantics, pure: no I/O, no clock (``now`` is passed in).

Everything a shadow service decides about one request lives here, so the IPC operations, the
local ``$aws/things/.../shadow/...`` topics, the V1 ``GGShadowService`` and the cloud sync all
answer the same way. The rules, from the AWS IoT Developer Guide ("Device Shadow service
documents", "Device Shadow MQTT topics", "Device Shadow error messages", "Interacting with
shadows") and Greengrass's ShadowManager:

* A document has ``state.desired`` and ``state.reported`` (each absent when empty), a
  ``metadata`` tree with the same shape whose leaves are ``{"timestamp": <epoch s>}`` (arrays:
  one entry per element), and a ``version`` that every accepted update increments.
* An update is ``{"state": {...}, "version"?, "clientToken"?}``. It merges: a key set to
  ``null`` is deleted, objects merge key by key, anything else (arrays included) replaces.
  ``state: null`` deletes both sections; ``desired: null`` / ``reported: null`` one of them. A
  ``delta`` a client sends is ignored; ``metadata`` too.
* ``version`` in a request must equal the shadow's current version, else 409 ``Version
  conflict``. A shadow deleted keeps its version: the next update continues from it ("the
  version number of the new device shadow document will follow that of the deleted one"), for
  48 hours; after that a new shadow starts again.
* ``delta`` = the keys of ``desired`` whose value differs from ``reported`` (objects compared
  key by key, numbers by value, arrays as a whole), with ``desired``'s metadata for them.
* Limits: ``clientToken`` at most 64 bytes, ``desired``/``reported`` at most 6 levels deep,
  ``desired`` + ``reported`` at most the size limit (8 KB by default, 30 KB at most) as compact
  JSON, thing names ``[a-zA-Z0-9:_-]{1,128}``, shadow names ``[a-zA-Z0-9:_-]{1,64}``.

Errors are :class:`ShadowError` with AWS's HTTP code and message; ``detail`` adds which field
and value when AWS's words alone would not say it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sprig.errors import SprigError

DEFAULT_SIZE_LIMIT: Final = 8 * 1024
MAX_SIZE_LIMIT: Final = 30 * 1024
MAX_DEPTH: Final = 6
MAX_CLIENT_TOKEN_BYTES: Final = 64
MAX_THING_NAME: Final = 128
MAX_SHADOW_NAME: Final = 64
NAME_PATTERN: Final = "[a-zA-Z0-9:_-]+"
#: A deleted shadow's version carries over to a new one created within this many seconds.
VERSION_MEMORY_SECONDS: Final = 48 * 3600
SECTIONS: Final = ("desired", "reported")
OPERATIONS: Final = ("get", "update", "delete")

_NAME = re.compile(NAME_PATTERN)
_TOPIC = re.compile(r"^\$aws/things/(?P<thing>[^/]+)/shadow(?:/name/(?P<name>[^/]+))?"
                    r"/(?P<op>get|update|delete)(?:/(?P<suffix>accepted|rejected|delta|documents))?$")

# AWS's messages ("Device Shadow error messages").
INVALID_JSON: Final = "Invalid JSON"
MISSING_STATE: Final = "Missing required node: state"
STATE_NOT_OBJECT: Final = "State node must be an object"
DESIRED_NOT_OBJECT: Final = "Desired node must be an object"
REPORTED_NOT_OBJECT: Final = "Reported node must be an object"
INVALID_VERSION: Final = "Invalid version"
INVALID_CLIENT_TOKEN: Final = "Invalid clientToken"
TOO_DEEP: Final = f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}"
INVALID_NODE: Final = "State contains an invalid node"
UNAUTHORIZED: Final = "Unauthorized"
VERSION_CONFLICT: Final = "Version conflict"
TOO_LARGE: Final = "The payload exceeds the maximum size allowed"
BAD_ENCODING: Final = "Unsupported documented encoding; supported encoding is UTF-8"
TOO_MANY_REQUESTS: Final = "Too Many Requests"
INTERNAL_FAILURE: Final = "Internal service failure"


class ShadowError(SprigError):
    """A refused shadow request: ``code`` is AWS's HTTP status, ``message`` AWS's words."""

    def __init__(self, code: int, message: str, detail: str = "") -> None:
        self.code = code
        self.message = message
        self.detail = detail
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """The message with the detail (which field, which value), for people and logs."""
        return f"{self.message} ({self.detail})" if self.detail else self.message

    def payload(self, now: int, client_token: str | None = None) -> dict[str, Any]:
        """The ``/rejected`` message: ``{code, message, timestamp, clientToken?}``. A 400's
        message carries the detail, as Greengrass's ``Invalid JSON: <why>`` does; the other
        codes keep AWS's exact words, which clients match on."""
        message = self.text if self.code == 400 else self.message
        out: dict[str, Any] = {"code": self.code, "message": message, "timestamp": now}
        if client_token is not None:
            out["clientToken"] = client_token
        return out


def not_found(shadow_name: str) -> ShadowError:
    """404 as AWS words it: ``No shadow exists with name: <name>`` (the classic shadow is
    "Unnamed Shadow", as Greengrass's ShadowManager says)."""
    return ShadowError(404, f"No shadow exists with name: {shadow_name or 'Unnamed Shadow'}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def validate_thing_name(thing: Any) -> str:
    if not isinstance(thing, str) or thing == "":
        raise ShadowError(400, "ThingName is missing", f"thingName: {_shown(thing)}")
    if len(thing) > MAX_THING_NAME:
        raise ShadowError(400, f"ThingName has a maximum length of {MAX_THING_NAME}",
                          f"thingName: {len(thing)} characters")
    if not _NAME.fullmatch(thing):
        raise ShadowError(400, f"ThingName must match pattern {NAME_PATTERN}",
                          f"thingName: {_shown(thing)}")
    return thing


def validate_shadow_name(name: Any) -> str:
    """A named shadow's name; ``None`` or ``""`` mean the classic shadow (returned as ``""``)."""
    if name is None or name == "":
        return ""
    if not isinstance(name, str):
        raise ShadowError(400, "ShadowName must be a string", f"shadowName: {_shown(name)}")
    if len(name) > MAX_SHADOW_NAME:
        raise ShadowError(400, f"ShadowName has a maximum length of {MAX_SHADOW_NAME}",
                          f"shadowName: {len(name)} characters")
    if not _NAME.fullmatch(name):
        raise ShadowError(400, f"ShadowName must match pattern {NAME_PATTERN}",
                          f"shadowName: {_shown(name)}")
    return name


def topic_prefix(thing: str, name: str) -> str:
    """``$aws/things/T/shadow`` (classic) or ``$aws/things/T/shadow/name/N``: also the
    ``accessControl`` resource of that shadow."""
    return f"$aws/things/{thing}/shadow" + (f"/name/{name}" if name else "")


@dataclass(frozen=True)
class ShadowTopic:
    thing: str
    name: str
    operation: str
    suffix: str | None

    @property
    def is_request(self) -> bool:
        return self.suffix is None


def parse_topic(topic: str) -> ShadowTopic | None:
    """A shadow topic's parts; None for any other topic (names are not validated here)."""
    m = _TOPIC.match(topic)
    if m is None:
        return None
    return ShadowTopic(m["thing"], m["name"] or "", m["op"], m["suffix"])


# --- the document --------------------------------------------------------------------------

@dataclass(frozen=True)
class ShadowDocument:
    """A stored shadow: ``state`` and ``metadata`` hold only non-empty ``desired`` / ``reported``
    sections."""

    state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    def to_json(self) -> dict[str, Any]:
        """The stored form (and ``update/documents``' ``previous``/``current``)."""
        return {"state": self.state, "metadata": self.metadata, "version": self.version}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShadowDocument:
        return cls(dict(data.get("state") or {}), dict(data.get("metadata") or {}),
                   int(data.get("version") or 0))

    def delta(self) -> dict[str, Any] | None:
        desired = self.state.get("desired")
        if not desired:
            return None
        reported = self.state.get("reported")
        if not reported:
            return dict(desired)
        found: Any = _delta(reported, desired)
        if isinstance(found, dict) and found:
            return dict(found)
        return None

    def delta_metadata(self, delta: Mapping[str, Any]) -> dict[str, Any]:
        restricted: dict[str, Any] = _restrict(self.metadata.get("desired") or {}, delta)
        return restricted

    def get_response(self, now: int, client_token: str | None = None) -> dict[str, Any]:
        """``get/accepted`` (and GetThingShadow's payload): state with its delta, metadata,
        version, timestamp."""
        state = dict(self.state)
        delta = self.delta()
        if delta:
            state["delta"] = delta
        out: dict[str, Any] = {"state": state, "metadata": self.metadata,
                               "version": self.version, "timestamp": now}
        if client_token is not None:
            out["clientToken"] = client_token
        return out

    def size(self) -> int:
        """What counts against the size limit: ``desired`` + ``reported`` as compact JSON."""
        return sum(len(compact(self.state[s])) for s in SECTIONS if s in self.state)


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _delta(reported: Any, desired: Any) -> Any:
    """What of ``desired`` differs from ``reported``; None when nothing does."""
    if isinstance(reported, dict) and isinstance(desired, dict):
        out: dict[str, Any] = {}
        for key, want in desired.items():
            if key not in reported:
                out[key] = want
                continue
            diff = _delta(reported[key], want)
            if diff is not None:
                out[key] = diff
        return out or None
    if _is_number(reported) and _is_number(desired):
        return None if reported == desired else desired
    if type(reported) is not type(desired) or reported != desired:
        return desired
    return None


def _restrict(metadata: Any, shape: Any) -> Any:
    """``metadata`` cut to the keys of ``shape`` (the delta's metadata)."""
    if isinstance(shape, dict) and isinstance(metadata, dict):
        return {k: _restrict(metadata[k], v) for k, v in shape.items() if k in metadata}
    return metadata


# --- updates --------------------------------------------------------------------------------

@dataclass(frozen=True)
class UpdateRequest:
    """A validated update: ``state`` as sent (``delta`` removed), or None for ``state: null``."""

    state: dict[str, Any] | None
    version: int | None
    client_token: str | None


def parse_json(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ShadowError(415, BAD_ENCODING) from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise ShadowError(400, INVALID_JSON, str(e)) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def client_token_of(value: Any) -> str | None:
    """The request's clientToken if it is a valid one (echoed even on rejection)."""
    if isinstance(value, dict):
        token = value.get("clientToken")
        if isinstance(token, str) and len(token.encode()) <= MAX_CLIENT_TOKEN_BYTES:
            return token
    return None


def parse_update(payload: bytes) -> UpdateRequest:
    """Validate an update request's shape (400/415 errors); nothing about the stored shadow."""
    if not payload:
        raise ShadowError(400, INVALID_JSON, "the update payload is empty; send "
                          '{"state": {"desired": {...}} | {"reported": {...}}}')
    doc = parse_json(payload)
    if not isinstance(doc, dict):
        raise ShadowError(400, INVALID_JSON, f"the payload must be a JSON object, not "
                          f"{type(doc).__name__}")
    token = doc.get("clientToken")
    if "clientToken" in doc and (not isinstance(token, str)
                                 or len(token.encode()) > MAX_CLIENT_TOKEN_BYTES):
        raise ShadowError(400, INVALID_CLIENT_TOKEN,
                          f"clientToken: {_shown(token)}; allowed: a string of at most "
                          f"{MAX_CLIENT_TOKEN_BYTES} bytes")
    version = doc.get("version")
    if "version" in doc and (not isinstance(version, int) or isinstance(version, bool)
                             or version < 0):
        raise ShadowError(400, INVALID_VERSION,
                          f"version: {_shown(version)}; allowed: a non-negative integer, the "
                          "shadow's current version")
    if "state" not in doc:
        raise ShadowError(400, MISSING_STATE)
    state = doc["state"]
    if state is None:
        return UpdateRequest(None, version, token)
    if not isinstance(state, dict):
        raise ShadowError(400, STATE_NOT_OBJECT, f"state: {_shown(state)}")
    state = {k: v for k, v in state.items() if k != "delta"}
    for key, value in state.items():
        if key not in SECTIONS:
            raise ShadowError(400, INVALID_NODE, f"state.{key}; allowed: desired, reported")
        if value is not None and not isinstance(value, dict):
            raise ShadowError(400, DESIRED_NOT_OBJECT if key == "desired"
                              else REPORTED_NOT_OBJECT, f"state.{key}: {_shown(value)}")
        if isinstance(value, dict) and _depth(value) > MAX_DEPTH:
            raise ShadowError(400, TOO_DEEP, f"state.{key}")
    return UpdateRequest(state, version, token)


def _depth(node: Any) -> int:
    """Levels of a section: the section itself is 1; empty objects/arrays and values add none."""
    if isinstance(node, dict) and node:
        return 1 + max(_depth(v) for v in node.values())
    if isinstance(node, list) and node:
        return 1 + max(_depth(v) for v in node)
    return 0


def _merge(current: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            base = out.get(key)
            merged = _merge(base if isinstance(base, dict) else {}, value)
            if merged or not _all_null(value):
                out[key] = merged
            else:
                out.pop(key, None)
        else:
            out[key] = value
    return out


def _all_null(value: Mapping[str, Any]) -> bool:
    """A patch object that only deletes (``{"a": null}``): it adds no empty object."""
    return bool(value) and all(v is None or (isinstance(v, dict) and _all_null(v))
                               for v in value.values())


def _meta_patch(value: Any, now: int) -> Any:
    if isinstance(value, dict):
        return {k: _meta_patch(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [_meta_patch(v, now) for v in value]
    return {"timestamp": now}


def _merge_meta(old: Any, patch: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata of ``state`` after an update whose metadata patch is ``patch``."""
    base = old if isinstance(old, dict) else {}
    out = {k: v for k, v in base.items() if k in state}
    for key, p in patch.items():
        if key not in state:
            out.pop(key, None)
        elif isinstance(state[key], dict) and isinstance(p, dict):
            out[key] = _merge_meta(out.get(key), p, state[key])
        else:
            out[key] = p
    return out


@dataclass(frozen=True)
class UpdateResult:
    document: ShadowDocument
    #: ``update/accepted`` (and UpdateThingShadow's payload)
    accepted: dict[str, Any]
    #: ``update/documents``
    documents: dict[str, Any]
    #: ``update/delta``, when desired and reported differ
    delta: dict[str, Any] | None


def current_version(document: ShadowDocument | None, deleted_version: int | None,
                    deleted_at: float | None, now: int) -> int:
    """The version a request's ``version`` must equal: the document's, a recently deleted
    shadow's, else 0."""
    if document is not None:
        return document.version
    if deleted_version is not None and deleted_at is not None \
            and now - deleted_at <= VERSION_MEMORY_SECONDS:
        return deleted_version
    return 0


def apply_update(current: ShadowDocument | None, base_version: int, request: UpdateRequest,
                 now: int, size_limit: int = DEFAULT_SIZE_LIMIT) -> UpdateResult:
    """Apply ``request`` to ``current`` (None: no shadow; ``base_version`` from
    :func:`current_version`). Raises 409 on a version mismatch, 413 over ``size_limit``."""
    if request.version is not None and request.version != base_version:
        raise ShadowError(409, VERSION_CONFLICT)
    old = current or ShadowDocument(version=base_version)
    state: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    patch_state = request.state
    meta_patch: dict[str, Any] = {}
    if patch_state is not None:
        meta_patch = {k: _meta_patch(v, now) if v is not None else {"timestamp": now}
                      for k, v in patch_state.items()}
        for section in SECTIONS:
            old_section = old.state.get(section) or {}
            if section not in patch_state:
                new_section = old_section
                new_meta = old.metadata.get(section) or {}
            elif patch_state[section] is None:
                new_section, new_meta = {}, {}
            else:
                new_section = _merge(old_section, patch_state[section])
                new_meta = _merge_meta(old.metadata.get(section), meta_patch[section],
                                       new_section)
            if new_section:
                state[section] = new_section
                metadata[section] = new_meta
    document = ShadowDocument(state, metadata, base_version + 1)
    size = document.size()
    if size > size_limit:
        raise ShadowError(413, TOO_LARGE)
    accepted: dict[str, Any] = {"state": patch_state, "metadata": meta_patch,
                                "version": document.version, "timestamp": now}
    documents: dict[str, Any] = {"current": document.to_json(), "timestamp": now}
    if current is not None:
        documents["previous"] = current.to_json()
    delta_msg: dict[str, Any] | None = None
    delta = document.delta()
    if delta:
        delta_msg = {"state": delta, "metadata": document.delta_metadata(delta),
                     "version": document.version, "timestamp": now}
    if request.client_token is not None:
        for msg in (accepted, documents, delta_msg):
            if msg is not None:
                msg["clientToken"] = request.client_token
    return UpdateResult(document, accepted, documents, delta_msg)


def delete_response(version: int, now: int, client_token: str | None = None) -> dict[str, Any]:
    """``delete/accepted``: the deleted shadow's version and a timestamp."""
    out: dict[str, Any] = {"version": version, "timestamp": now}
    if client_token is not None:
        out["clientToken"] = client_token
    return out
