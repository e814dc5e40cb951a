from __future__ import annotations

import json

import pytest

from sprig.config.update import (
    MAX_MERGE_CHARS,
    ConfigUpdate,
    parse_api_configuration_update,
    parse_update_document,
)
from sprig.errors import ValidationError


def test_cli_shape_parses() -> None:
    doc = json.loads(
        '{"com.example.Hello": {"MERGE": {"greeting": "hi", "list": [1, 2]},'
        ' "RESET": ["/old", ""]}, "com.example.Other": {}}'
    )
    updates = parse_update_document(doc, "--update-config")
    hello = updates["com.example.Hello"]
    assert hello.merge == {"greeting": "hi", "list": [1, 2]}
    assert hello.reset == ("/old", "")
    assert hello.resets_everything
    assert updates["com.example.Other"].is_noop


def test_merge_is_a_private_copy() -> None:
    merge = {"a": {"b": 1}}
    update = ConfigUpdate.from_document({"MERGE": merge})
    merge["a"]["b"] = 2
    assert update.merge == {"a": {"b": 1}}


def test_round_trip_document() -> None:
    doc = {"MERGE": {"a": None}, "RESET": ["/x"]}
    assert ConfigUpdate.from_document(doc).to_document() == doc
    assert ConfigUpdate().to_document() == {}


def _err(doc: object) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        parse_update_document(doc, "deploy.json")
    assert err.value.source == "deploy.json"
    return err.value


def test_document_must_be_object() -> None:
    e = _err(["x"])
    assert "object keyed by component name" in str(e)


def test_unknown_key_names_path_value_allowed() -> None:
    e = _err({"comp": {"MERGE": {}, "REPLACE": {}}})
    assert e.path == "comp.REPLACE"
    assert "'REPLACE'" in str(e)
    assert e.allowed == "MERGE, RESET"


def test_lower_case_key_gets_a_hint() -> None:
    e = _err({"comp": {"merge": {}}})
    assert "upper case" in str(e)


def test_merge_must_be_object() -> None:
    e = _err({"comp": {"MERGE": [1]}})
    assert e.path == "comp.MERGE"
    assert "MERGE must be an object" in str(e)
    assert "[1]" in str(e)
    e = _err({"comp": {"MERGE": None}})
    assert "None" in str(e)


def test_reset_must_be_list_of_valid_pointers() -> None:
    assert _err({"c": {"RESET": "/a"}}).path == "c.RESET"
    e = _err({"c": {"RESET": ["/ok", 3]}})
    assert e.path == "c.RESET[1]"
    assert "3" in str(e)
    e = _err({"c": {"RESET": ["/ok", "no-slash"]}})
    assert e.path == "c.RESET[1]"
    assert "'no-slash'" in str(e)
    e = _err({"c": {"RESET": ["/" + "a" * 256]}})
    assert "too long (257 characters)" in str(e)
    assert "at most 256" in str(e)
    # exactly 256 is fine
    parse_update_document({"c": {"RESET": ["/" + "a" * 255]}}, "x")


def test_component_names() -> None:
    assert "component name" in str(_err({"": {}}))
    assert "1-128" in str(_err({"x" * 129: {}}))


def test_merge_values_must_be_json() -> None:
    e = _err({"c": {"MERGE": {"a": {1: "x"}}}})
    assert e.path == "c.MERGE.a"
    e = _err({"c": {"MERGE": {"a": [float("nan")]}}})
    assert e.path == "c.MERGE.a[0]"
    e = _err({"c": {"MERGE": {"a": {1, 2}}}})
    assert "not a JSON value (set)" in str(e)


def test_api_shape() -> None:
    update = parse_api_configuration_update({"merge": '{"a": [1]}', "reset": ["/b"]})
    assert update == ConfigUpdate(merge={"a": [1]}, reset=("/b",))
    assert parse_api_configuration_update({}).is_noop


@pytest.mark.parametrize(
    ("doc", "path", "text"),
    [
        ({"merge": ""}, "configurationUpdate.merge", "1-10485760"),
        ({"merge": "{"}, "configurationUpdate.merge", "not valid JSON"),
        ({"merge": "[1]"}, "configurationUpdate.merge", "MERGE must be an object"),
        ({"merge": "{}", "MERGE": "{}"}, "configurationUpdate.MERGE", "unknown key"),
        ({"reset": ["x"]}, "configurationUpdate.reset[0]", "start with '/'"),
    ],
)
def test_api_shape_errors(doc: object, path: str, text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_api_configuration_update(doc)
    assert err.value.path == path
    assert text in str(err.value)


def test_api_merge_size_limit() -> None:
    big = json.dumps({"a": "x" * MAX_MERGE_CHARS})
    with pytest.raises(ValidationError, match="1-10485760"):
        parse_api_configuration_update({"merge": big})
