"""The pure Device Shadow semantics (``sprig.shadow.document``), against AWS's documented rules.

Sources quoted per test: the AWS IoT Developer Guide pages "Device Shadow service documents",
"Device Shadow error messages", "Interacting with shadows" and the Greengrass ShadowManager.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sprig.shadow.document import (
    ShadowDocument,
    ShadowError,
    UpdateRequest,
    apply_update,
    current_version,
    parse_topic,
    parse_update,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)

T0 = 1_700_000_000


def upd(doc: ShadowDocument | None, payload: Any, now: int = T0, limit: int = 8192) -> Any:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return apply_update(doc, doc.version if doc else 0, parse_update(raw), now, limit)


def err(fn: Any, *args: Any) -> ShadowError:
    with pytest.raises(ShadowError) as info:
        fn(*args)
    return info.value


def test_first_update_creates_version_1_with_metadata_per_leaf() -> None:
    """"Creates a shadow if it doesn't exist" (Interacting with shadows); metadata "contains the
    timestamp for each attribute"; arrays get one metadata entry per element."""
    r = upd(None, {"state": {"reported": {"color": "red", "pos": [1, 2]}}})
    assert r.document.version == 1
    assert r.document.state == {"reported": {"color": "red", "pos": [1, 2]}}
    assert r.document.metadata == {"reported": {"color": {"timestamp": T0}, "pos": [
        {"timestamp": T0}, {"timestamp": T0}]}}
    assert r.accepted == {"state": {"reported": {"color": "red", "pos": [1, 2]}},
                          "metadata": {"reported": {"color": {"timestamp": T0},
                                                    "pos": [{"timestamp": T0},
                                                            {"timestamp": T0}]}},
                          "version": 1, "timestamp": T0}
    assert "previous" not in r.documents and r.documents["current"]["version"] == 1


def test_merge_null_deletes_arrays_replace_objects_merge() -> None:
    """"To delete an attribute, set its value to null"; "arrays are treated as values: an
    update replaces the whole array"; objects merge key by key (Device Shadow documents)."""
    d1 = upd(None, {"state": {"desired": {"a": 1, "b": {"x": 1, "y": 2}, "l": [1, 2, 3]}}})
    d2 = upd(d1.document, {"state": {"desired": {"a": None, "b": {"y": 3}, "l": [9]}}}, T0 + 5)
    assert d2.document.state == {"desired": {"b": {"x": 1, "y": 3}, "l": [9]}}
    meta = d2.document.metadata["desired"]
    assert meta == {"b": {"x": {"timestamp": T0}, "y": {"timestamp": T0 + 5}},
                    "l": [{"timestamp": T0 + 5}]}
    assert d2.documents["previous"]["state"]["desired"]["a"] == 1
    d3 = upd(d2.document, {"state": {"desired": None}})
    assert d3.document.state == {} and d3.document.metadata == {}
    d4 = upd(upd(None, {"state": {"reported": {"z": 1}}}).document, {"state": None})
    assert d4.document.state == {} and d4.document.version == 2


def test_delta_is_desired_minus_reported_with_desired_metadata() -> None:
    """"delta ... contains the difference between the desired and reported states"; "the
    delta only includes desired attributes"; numbers compare by value."""
    r = upd(None, {"state": {"desired": {"color": "green", "n": 1, "o": {"a": 1, "b": 2}},
                             "reported": {"color": "red", "n": 1.0, "o": {"a": 1},
                                          "only": 5}}})
    assert r.delta is not None
    assert r.delta["state"] == {"color": "green", "o": {"b": 2}}
    assert r.delta["metadata"] == {"color": {"timestamp": T0}, "o": {"b": {"timestamp": T0}}}
    got = r.document.get_response(T0 + 1)
    assert got["state"]["delta"] == {"color": "green", "o": {"b": 2}}
    same = upd(r.document, {"state": {"reported": {"color": "green", "o": {"b": 2}}}})
    assert same.delta is None and "delta" not in same.document.get_response(T0)["state"]


def test_version_must_match_and_client_token_is_echoed() -> None:
    """"If used, the Device Shadow service processes the update only if the specified version
    matches the latest version it has" → 409 "Version conflict"; the clientToken is echoed."""
    r = upd(None, {"state": {"reported": {"a": 1}}, "clientToken": "tok-1"})
    assert r.accepted["clientToken"] == "tok-1" and r.documents["clientToken"] == "tok-1"
    e = err(upd, r.document, {"state": {"reported": {"a": 2}}, "version": 5})
    assert (e.code, e.message) == (409, "Version conflict")
    ok = upd(r.document, {"state": {"reported": {"a": 2}}, "version": 1})
    assert ok.document.version == 2


def test_deleted_shadow_version_carries_over_for_48_hours() -> None:
    """"If you create a device shadow document that has the same name as one that was deleted
    within the past 48 hours, the version number of the new device shadow document will follow
    that of the deleted one" (Interacting with shadows)."""
    assert current_version(None, 7, T0, T0 + 3600) == 7
    assert current_version(None, 7, T0, T0 + 49 * 3600) == 0
    r = apply_update(None, 7, parse_update(b'{"state":{"reported":{"a":1}}}'), T0)
    assert r.document.version == 8


@pytest.mark.parametrize("payload,code,message", [
    (b"{nope", 400, "Invalid JSON"),
    (b"\xff\xfe", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
    (b"[1]", 400, "Invalid JSON"),
    (b"", 400, "Invalid JSON"),
    (b'{"version": 1}', 400, "Missing required node: state"),
    (b'{"state": 3}', 400, "State node must be an object"),
    (b'{"state": {"desired": 1}}', 400, "Desired node must be an object"),
    (b'{"state": {"reported": "x"}}', 400, "Reported node must be an object"),
    (b'{"state": {"reported": {}}, "version": -1}', 400, "Invalid version"),
    (b'{"state": {"reported": {}}, "version": "3"}', 400, "Invalid version"),
    (b'{"state": {"reported": {}}, "clientToken": 5}', 400, "Invalid clientToken"),
    (json.dumps({"state": {}, "clientToken": "x" * 65}).encode(), 400, "Invalid clientToken"),
    (b'{"state": {"other": {}}}', 400, "State contains an invalid node"),
    (json.dumps({"state": {"reported": {"1": {"2": {"3": {"4": {"5": {"6": {"7": 1}}}}}}}}}
                ).encode(), 400, "JSON contains too many levels of nesting; maximum is 6"),
])
def test_every_400_error_has_aws_words(payload: bytes, code: int, message: str) -> None:
    """"Device Shadow error messages": 400 Invalid JSON, Missing required node: state, State
    node must be an object, Desired/Reported node must be an object, Invalid version, Invalid
    clientToken ("A client token that is longer than 64 bytes will cause this response"), JSON
    contains too many levels of nesting; maximum is 6, State contains an invalid node; 415
    Unsupported documented encoding."""
    e = err(parse_update, payload)
    assert (e.code, e.message) == (code, message)
    assert e.payload(T0)["code"] == code and e.payload(T0)["message"].startswith(message)


def test_six_levels_are_allowed() -> None:
    """The nesting limit counts desired/reported as level 1; six levels pass."""
    ok = {"state": {"reported": {"1": {"2": {"3": {"4": {"5": 1}}}}}}}
    assert upd(None, ok).document.version == 1


def test_size_limit_413_counts_desired_plus_reported() -> None:
    """413 "The payload exceeds the maximum size allowed"; ShadowManager's
    shadowDocumentSizeLimitBytes bounds desired + reported (default 8 KB)."""
    big = {"state": {"desired": {"a": "x" * 5000}, "reported": {"b": "y" * 4000}}}
    e = err(upd, None, big)
    assert (e.code, e.message) == (413, "The payload exceeds the maximum size allowed")
    assert upd(None, big, limit=30 * 1024).document.version == 1


def test_client_delta_and_metadata_are_ignored() -> None:
    """A delta a client sends is not state (ShadowManager drops it before validating)."""
    r = upd(None, {"state": {"reported": {"a": 1}, "delta": {"x": 1}}})
    assert r.document.state == {"reported": {"a": 1}}


def test_names_and_topics() -> None:
    """Thing and shadow names: [a-zA-Z0-9:_-]+, at most 128 / 64 characters; the classic
    shadow's topics are $aws/things/T/shadow/..., a named one's .../shadow/name/N/..."""
    assert validate_thing_name("Robot_Arm:1-x") == "Robot_Arm:1-x"
    assert validate_shadow_name(None) == "" and validate_shadow_name("cfg") == "cfg"
    for bad in ("", "a/b", "a+b", "x" * 129, None):
        assert err(validate_thing_name, bad).code == 400
    assert err(validate_shadow_name, "x" * 65).message == "ShadowName has a maximum length of 64"
    assert topic_prefix("T", "") == "$aws/things/T/shadow"
    assert topic_prefix("T", "n") == "$aws/things/T/shadow/name/n"
    t = parse_topic("$aws/things/T/shadow/name/n/update/delta")
    assert t is not None and (t.thing, t.name, t.operation, t.suffix) == ("T", "n", "update",
                                                                         "delta")
    req = parse_topic("$aws/things/T/shadow/get")
    assert req is not None and req.is_request and req.name == ""
    assert parse_topic("$aws/things/T/shadow/patch") is None


def test_request_is_not_mutated_and_document_roundtrips() -> None:
    state = {"desired": {"o": {"a": 1}}}
    request = UpdateRequest(state, None, None)
    r = apply_update(None, 0, request, T0)
    r2 = apply_update(r.document, 1, UpdateRequest({"desired": {"o": {"b": 2}}}, None, None), T0)
    assert state == {"desired": {"o": {"a": 1}}}
    assert r.document.state == {"desired": {"o": {"a": 1}}}
    assert ShadowDocument.from_json(json.loads(json.dumps(r2.document.to_json()))) == r2.document
