"""The one table of Lambda parameters agrees with its readers, its writers and its docs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.functions.config import LambdaConfig
from sprig.lambda_params import (
    BY_FIELD,
    CONFIG_KEYS,
    PARAMETERS,
    Kind,
    all_config_keys,
    markdown_table,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "lambda-parameters.md"
BEGIN = "<!-- BEGIN lambda_params.markdown_table -->\n"
END = "<!-- END lambda_params.markdown_table -->"


def test_the_doc_shows_the_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{DOC}: the table markers are missing"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert shown == markdown_table(), (
        f"{DOC} is out of date with sprig/lambda_params.py: paste markdown_table() between "
        "its markers")


def test_every_configuration_parameter_is_a_field_of_the_reader() -> None:
    fields = {f.name for f in dataclasses.fields(LambdaConfig)}
    for param in PARAMETERS:
        if param.kind is not Kind.ARGS:
            assert param.field in fields, param.field
    assert fields == {p.field for p in PARAMETERS if p.key is not None}


def test_the_defaults_are_the_readers_defaults() -> None:
    empty = LambdaConfig.from_configuration({})
    for param in PARAMETERS:
        if param.key is None:
            continue
        value = getattr(empty, param.field)
        expected = param.default
        if param.kind is Kind.ENTRIES:
            assert value == (), param.field
        elif param.kind is Kind.STRINGS:
            assert dict(value) == {}, param.field
        else:
            assert value == expected, param.field


def test_each_integer_bound_is_enforced_by_the_reader() -> None:
    for param in PARAMETERS:
        if param.kind is not Kind.INTEGER or param.key is None:
            continue
        assert param.minimum is not None
        parent, _, leaf = param.key.rpartition(".")
        below: dict[str, object] = {leaf: param.minimum - 1}
        at: dict[str, object] = {leaf: param.minimum}
        doc_below = {parent: below} if parent else below
        doc_at = {parent: at} if parent else at
        assert getattr(LambdaConfig.from_configuration(doc_at), param.field) == param.minimum
        with pytest.raises(ValidationError, match=re.escape(param.key)):
            LambdaConfig.from_configuration(doc_below)


def test_key_lists_come_from_the_table() -> None:
    assert "containerParams" in CONFIG_KEYS and "timeoutInSeconds" in CONFIG_KEYS
    assert "containerParams.ephemeralStorageSize" in all_config_keys()
    assert BY_FIELD["ephemeral_storage_kb"].api is None
