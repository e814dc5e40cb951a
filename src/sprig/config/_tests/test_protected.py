"""The configuration guard: which keys IPC may not change, and which updates reach them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprig.config.merge import deep_merge
from sprig.config.pointer import MISSING, resolve
from sprig.config.protected import (
    ACCESS_CONTROL,
    ProtectedKey,
    Reference,
    protected_keys,
    reached_key,
)
from sprig.functions.config import LambdaConfig

LAMBDA = "aws.greengrass.lambda"
GENERIC = "aws.greengrass.generic"

# Every key the Lambda manager knows, with nested values it reads too.
FULL_LAMBDA_CONFIG: dict[str, Any] = {
    "pinned": False, "timeoutInSeconds": 5, "maxIdleTimeInSeconds": 60,
    "maxInstancesCount": 2, "maxQueueSize": 10, "statusTimeoutInSeconds": 60,
    "inputPayloadEncodingType": "json", "containerMode": "GreengrassContainer",
    "containerParams": {"memorySize": 65536, "mountROSysfs": True,
                        "volumes": {"0": {"sourcePath": "/tmp", "destinationPath": "/tmp",
                                          "permission": "rw", "addGroupOwner": True}},
                        "devices": {"0": {"path": "/dev/null", "permission": "rw"}}},
    "lambdaExecutionParameters": {"EnvironmentVariables": {"A": "1"}},
    "pubsubTopics": {"0": {"topic": "t/#", "type": "PUB_SUB"}},
    "accessControl": {},
}


class Recording(Mapping[str, Any]):
    """A configuration that remembers which top-level keys were read."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(str(key))
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        # Listing the keys is how the parser refuses unknown ones; it reads none of them.
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self.data


def test_every_key_the_lambda_parser_reads_is_protected_for_a_lambda_component() -> None:
    cfg = Recording(FULL_LAMBDA_CONFIG)
    parsed = LambdaConfig.from_configuration(cfg)
    assert parsed.volumes and parsed.devices and parsed.environment and parsed.event_sources
    protected = {k.path[0] for k in protected_keys("Fn", LAMBDA, []) if len(k.path) == 1}
    assert cfg.read, "the parser read nothing?"
    assert cfg.read <= protected, f"read but not protected: {cfg.read - protected}"
    assert "accessControl" in protected
    # A generic component's keys of the same names are its own business.
    assert protected_keys("App", GENERIC, []) == [ACCESS_CONTROL]


def test_references_protect_the_owner_s_keys_only() -> None:
    refs = [Reference("App", ("cmd",), "the RequiresPrivilege Install step of App"),
            Reference("Lib", ("path", "x"), "the RequiresPrivilege Install step of App"),
            Reference("App", (), "the Setenv ALL of Other")]
    app = protected_keys("App", GENERIC, refs)
    assert [k.path for k in app] == [("accessControl",), ("cmd",), ()]
    assert app[1].reason == "the RequiresPrivilege Install step of App interpolates it"
    assert [k.path for k in protected_keys("Lib", GENERIC, refs)] == [
        ("accessControl",), ("path", "x")]
    assert [k.pointer for k in protected_keys("Lib", GENERIC, refs)] == [
        "/accessControl", "/path/x"]


KEYS = [ACCESS_CONTROL, ProtectedKey(("containerParams",), "r"),
        ProtectedKey(("a", "b"), "r"), ProtectedKey(("x/y", "0"), "r")]


@pytest.mark.parametrize(("path", "value", "hit"), [
    # at the key, inside it, at an ancestor whose value reaches it
    (["accessControl"], {"x": {}}, "/accessControl"),
    (["accessControl", "aws.greengrass.ipc.pubsub"], {}, "/accessControl"),
    ([], {"accessControl": {}}, "/accessControl"),
    ([], {"containerParams": {"volumes": {}}}, "/containerParams"),
    (["containerParams", "volumes", "0"], {"sourcePath": "/etc"}, "/containerParams"),
    (["containerParams"], "scalar", "/containerParams"),
    (["a"], {"b": 1}, "/a/b"),
    (["a"], {"b": {"deep": 1}}, "/a/b"),
    (["a"], "replaces a, and a/b with it", "/a/b"),
    (["a"], None, "/a/b"),
    (["a"], [1, 2], "/a/b"),
    ([], {"a": "scalar"}, "/a/b"),
    (["a", "b", "c"], 1, "/a/b"),
    (["x/y"], {"0": 1}, "/x~1y/0"),
    (["x/y"], ["list"], "/x~1y/0"),
    # elsewhere, or an ancestor update that leaves the key alone
    ([], {"message": "hi", "a": {"c": 1}}, None),
    (["a"], {"c": 1}, None),
    (["a"], {}, None),
    (["ab"], 1, None),
    (["accessControl2"], 1, None),
    (["x/y", "1"], 1, None),
    (["x"], {"y": {"0": 1}}, None),         # "x" / "y" is not the key "x/y"
    ([], {}, None),
])
def test_reached_key(path: list[str], value: Any, hit: str | None) -> None:
    found = reached_key(KEYS, path, value)
    assert (found.pointer if found else None) == hit


def test_the_whole_document_protected_refuses_every_update() -> None:
    keys = [ProtectedKey((), "the Setenv ALL of App interpolates it")]
    assert reached_key(keys, [], {"anything": 1}) is keys[0]
    assert reached_key(keys, ["deep", "key"], 1) is keys[0]
    assert reached_key(keys, [], {}) is not None


paths = st.lists(st.sampled_from(["a", "b", "c"]), max_size=3)
values = st.recursive(st.one_of(st.none(), st.integers(0, 3), st.text("xy", max_size=2)),
                      lambda inner: st.dictionaries(st.sampled_from(["a", "b", "c"]), inner,
                                                    max_size=3), max_leaves=6)


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), values, max_size=3), paths, values,
       paths)
def test_a_merge_the_guard_allows_never_changes_the_protected_key(
        doc: dict[str, Any], at: list[str], value: Any, protected: list[str]) -> None:
    """Checked against the real MERGE: when the guard says no key is reached, the value at
    the protected path (or its absence) is the same after the merge."""
    patch: Any = value
    for key in reversed(at):
        patch = {key: patch}
    if not isinstance(patch, dict):
        return
    key = ProtectedKey(tuple(protected), "r")
    after = deep_merge(doc, patch)
    before_value = resolve(doc, key.path)
    after_value = resolve(after, key.path)
    if reached_key([key], at, value) is None:
        assert after_value == before_value or (before_value is MISSING
                                               and after_value is MISSING)
