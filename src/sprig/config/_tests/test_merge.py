from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sprig.config.merge import (
    ConfigState,
    ConfigUpdate,
    apply_update,
    compact_updates,
    deep_merge,
    effective_configuration,
    merge_defaults,
)
from sprig.config.pointer import format_pointer
from sprig.errors import ValidationError

# The default configuration of the nucleus's CONFIGURE_COMPONENT_README example.
DEFAULTS: dict[str, Any] = {
    "singleLevelKey": "default value of singleLevelKey",
    "path": {"leafKey": "default value of /path/leafKey"},
    "listKey": ["item1", "item2"],
    "emptyStringKey": "",
    "emptyListKey": [],
    "emptyMap": {},
    "defaultIsNullKey": None,
}


def upd(merge: dict[str, Any] | None = None, *reset: str) -> ConfigUpdate:
    return ConfigUpdate(merge=merge, reset=tuple(reset))


def test_readme_sample_merge() -> None:
    update = upd(
        {
            "singleLevelKey": "updated value of singleLevelKey",
            "newSingleLevelKey": "I was not in the default value and could be added.",
            "listKey": ["item3"],
            "path": {
                "leafKey": "updated value of /path/leafKey",
                "newLeafKey": "value of /path/newLeafKey",
            },
        }
    )
    result = apply_update(DEFAULTS, DEFAULTS, update)
    assert result["singleLevelKey"] == "updated value of singleLevelKey"
    assert result["newSingleLevelKey"].startswith("I was not")
    assert result["listKey"] == ["item3"]  # lists are replaced, never appended to
    assert result["path"] == {
        "leafKey": "updated value of /path/leafKey",
        "newLeafKey": "value of /path/newLeafKey",
    }
    assert result["emptyMap"] == {}
    # inputs untouched
    assert DEFAULTS["listKey"] == ["item1", "item2"]


def test_merge_can_change_types_and_set_null_and_empties() -> None:
    current = {"myKey": "myValue", "obj": {"a": 1}, "n": 5}
    result = apply_update(
        current, {}, upd({"myKey": {"nestedKey1": "myValue"}, "obj": None, "n": [], "e": {}})
    )
    assert result == {"myKey": {"nestedKey1": "myValue"}, "obj": None, "n": [], "e": {}}


def test_merge_object_over_scalar_replaces() -> None:
    assert deep_merge({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_reset_restores_default_including_null_and_empties() -> None:
    current = apply_update(
        DEFAULTS,
        DEFAULTS,
        upd({"emptyStringKey": "x", "emptyListKey": [1], "emptyMap": {"k": 1},
             "defaultIsNullKey": 3, "listKey": []}),
    )
    reset = upd(None, "/emptyStringKey", "/emptyListKey", "/emptyMap", "/defaultIsNullKey",
                "/listKey")
    assert apply_update(current, DEFAULTS, reset) == DEFAULTS


def test_reset_removes_key_without_default() -> None:
    current = apply_update(DEFAULTS, DEFAULTS, upd({"extra": 1, "path": {"more": 2}}))
    result = apply_update(current, DEFAULTS, upd(None, "/extra", "/path/more"))
    assert result == DEFAULTS


def test_reset_nested_default_recreates_parents() -> None:
    current = apply_update(DEFAULTS, DEFAULTS, upd({"path": None}))
    result = apply_update(current, DEFAULTS, upd(None, "/path/leafKey"))
    assert result["path"] == {"leafKey": "default value of /path/leafKey"}


def test_reset_whole_document_ignores_other_pointers() -> None:
    current = apply_update(DEFAULTS, DEFAULTS, upd({"a": 1, "singleLevelKey": "x"}))
    # "/nothing" would be refused on its own; with "" Greengrass ignores the rest.
    result = apply_update(current, DEFAULTS, upd({"b": 2}, "/nothing", ""))
    assert result == {**DEFAULTS, "b": 2}


def test_reset_runs_before_merge() -> None:
    result = apply_update(DEFAULTS, DEFAULTS, upd({"singleLevelKey": "new"}, "/singleLevelKey"))
    assert result["singleLevelKey"] == "new"


def test_reset_into_list_refused() -> None:
    current = {**DEFAULTS, "objs": [{"a": 1}]}
    for pointer in ("/listKey/0", "/objs/0/a", "/listKey/-"):
        with pytest.raises(ValidationError) as err:
            apply_update(current, DEFAULTS, upd(None, "/singleLevelKey", pointer))
        assert err.value.path == "RESET[1]"
        assert "only whole lists can be reset" in str(err.value)
        assert repr(pointer) in str(err.value)
    # the whole list is fine
    assert apply_update(current, DEFAULTS, upd(None, "/objs")) == DEFAULTS


def test_reset_into_list_of_defaults_refused() -> None:
    current = {"listKey": {"0": "was an object"}}
    with pytest.raises(ValidationError, match="only whole lists"):
        apply_update(current, DEFAULTS, upd(None, "/listKey/0"))


def test_reset_to_nothing_refused_naming_pointer() -> None:
    with pytest.raises(ValidationError) as err:
        apply_update(DEFAULTS, DEFAULTS, upd(None, "/path/typo"))
    assert err.value.path == "RESET[0]"
    assert "'/path/typo'" in str(err.value)
    assert "names nothing" in str(err.value)


def test_escaped_pointer_tokens() -> None:
    defaults = {"a/b": {"c~d": 1}}
    current = apply_update(defaults, defaults, upd({"a/b": {"c~d": 2, "x": 3}}))
    assert apply_update(current, defaults, upd(None, "/a~1b/c~0d", "/a~1b/x")) == defaults


def test_effective_configuration_replays_and_apply_is_one_step() -> None:
    updates = [
        upd({"a": 1, "path": {"x": 1}}),
        upd({"a": 2}, "/path/x"),
        upd(None, "/singleLevelKey"),
        upd({"listKey": ["z"]}),
    ]
    doc = copy.deepcopy(DEFAULTS)
    for i, u in enumerate(updates):
        doc = apply_update(doc, DEFAULTS, u)
        assert doc == effective_configuration(DEFAULTS, updates[: i + 1])
    assert doc == {**DEFAULTS, "a": 2, "listKey": ["z"]}
    assert effective_configuration(DEFAULTS, []) == DEFAULTS


def test_merge_defaults_new_version() -> None:
    old_defaults = {"port": 8080, "host": "a", "legacy": True, "nested": {"k": 1, "j": 1}}
    new_defaults = {"port": 9090, "host": "b", "nested": {"k": 2, "j": 2}, "added": []}
    updates = [upd({"host": "user-host", "nested": {"j": 5}, "mine": 1}), upd(None, "/port")]
    before = effective_configuration(old_defaults, updates)
    assert before == {"port": 8080, "host": "user-host", "legacy": True,
                      "nested": {"k": 1, "j": 5}, "mine": 1}
    after = merge_defaults(new_defaults, updates)
    # keys the user never set (or reset) follow the new defaults; user values are kept
    assert after == {"port": 9090, "host": "user-host", "nested": {"k": 2, "j": 5},
                     "added": [], "mine": 1}


def test_replay_skips_resets_that_name_nothing_under_new_defaults() -> None:
    updates = [upd(None, "/gone")]
    assert effective_configuration({"gone": 1}, updates) == {"gone": 1}
    assert merge_defaults({"other": 1}, updates) == {"other": 1}
    assert merge_defaults({"gone": [1]}, [upd(None, "/gone/0")]) == {"gone": [1]}


def test_compact_updates() -> None:
    a, b, c = upd({"a": 1}), upd(None, ""), upd({"c": 1})
    assert compact_updates([a, upd(), b, c]) == (b, c)
    assert compact_updates([a, c]) == (a, c)


def test_config_state_apply_validates_and_persists() -> None:
    state = ConfigState(DEFAULTS)
    assert state.effective == DEFAULTS
    state = state.apply(upd({"a": 1}))
    with pytest.raises(ValidationError):
        state.apply(upd(None, "/nope"))
    state = state.apply(upd(None, "/a"))
    assert state.effective == DEFAULTS
    doc = json.loads(json.dumps(state.to_document()))
    again = ConfigState.from_document(doc)
    assert again == state
    assert again.effective == DEFAULTS
    bumped = again.with_defaults({"singleLevelKey": "v2"})
    assert bumped.effective == {"singleLevelKey": "v2"}


def test_config_state_from_bad_document() -> None:
    with pytest.raises(ValidationError, match="updates"):
        ConfigState.from_document({"defaults": {}, "updates": {}})
    with pytest.raises(ValidationError) as err:
        ConfigState.from_document({"updates": [{"MERGE": 1}]}, source="state.db")
    assert err.value.path == "updates[0].MERGE"


# --- properties -----------------------------------------------------------------------------

keys = st.text(alphabet="abc/~", min_size=1, max_size=3)
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)
objects = st.dictionaries(keys, json_values, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects, objects, objects)
def test_reset_everything_gives_defaults(defaults: dict[str, Any], m1: dict[str, Any],
                                         m2: dict[str, Any]) -> None:
    current = effective_configuration(defaults, [upd(m1), upd(m2)])
    assert apply_update(current, defaults, upd(None, "")) == defaults


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects, objects)
def test_merge_then_reset_its_keys_gives_defaults(defaults: dict[str, Any],
                                                  merge: dict[str, Any]) -> None:
    merged = apply_update(defaults, defaults, upd(merge))
    reset = upd(None, *(format_pointer([k]) for k in merge))
    assert apply_update(merged, defaults, reset) == defaults


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects, objects, objects)
def test_merge_is_idempotent_and_inputs_untouched(base: dict[str, Any], m: dict[str, Any],
                                                  d: dict[str, Any]) -> None:
    snapshot = copy.deepcopy((base, m, d))
    once = apply_update(base, d, upd(m))
    assert apply_update(once, d, upd(m)) == once
    assert (base, m, d) == snapshot
    for key, value in m.items():
        if not isinstance(value, dict):
            assert once[key] == value
