from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprig.config.pointer import (
    MISSING,
    crosses_list,
    format_pointer,
    parse_pointer,
    resolve,
)
from sprig.errors import ValidationError

# The examples of RFC 6901 section 5.
RFC_DOC = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", RFC_DOC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_rfc6901_examples(pointer: str, expected: object) -> None:
    assert resolve(RFC_DOC, parse_pointer(pointer)) == expected


def test_tilde01_is_decoded_in_order() -> None:
    # "~01" is "~" followed by "1", not "/".
    assert parse_pointer("/~01") == ("~1",)
    assert format_pointer(("~1",)) == "/~01"


@pytest.mark.parametrize("bad", ["a", "a/b", "/x~", "/x~2", "/~a"])
def test_invalid_pointers_name_the_value(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_pointer(bad, path="comp.RESET[0]", source="cli")
    assert err.value.path == "comp.RESET[0]"
    assert repr(bad) in str(err.value)
    assert "allowed" in str(err.value)


def test_non_string_pointer() -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        parse_pointer(5)


def test_resolve_missing_and_list_indices() -> None:
    doc = {"a": [10, 20], "b": None}
    assert resolve(doc, ("b",)) is None
    assert resolve(doc, ("c",)) is MISSING
    assert resolve(doc, ("a", "1")) == 20
    assert resolve(doc, ("a", "2")) is MISSING
    assert resolve(doc, ("a", "01")) is MISSING  # leading zeros are not indices
    assert resolve(doc, ("a", "-")) is MISSING
    assert resolve(doc, ("b", "x")) is MISSING


def test_crosses_list() -> None:
    doc = {"a": [{"x": 1}], "b": {"c": 1}}
    assert crosses_list(doc, ("a", "0"))
    assert crosses_list(doc, ("a", "0", "x"))
    assert not crosses_list(doc, ("a",))
    assert not crosses_list(doc, ("b", "c"))
    assert not crosses_list(doc, ("nope", "0"))


@given(st.lists(st.text(), max_size=5))
def test_format_parse_round_trip(tokens: list[str]) -> None:
    assert parse_pointer(format_pointer(tokens)) == tuple(tokens)
