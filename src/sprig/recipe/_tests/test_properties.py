"""Properties: the canonical form round-trips, and bad input only ever gives ValidationError."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sprig.errors import ValidationError
from sprig.recipe import parse_recipe

names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,12}", fullmatch=True)
versions = st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}")
texts = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=10) | \
    st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) |
                           st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
env = st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
                      st.text(max_size=10) | st.integers(0, 99) | st.booleans(), max_size=3)


def step() -> st.SearchStrategy[Any]:
    full = st.fixed_dictionaries({"Script": texts}, optional={
        "RequiresPrivilege": st.booleans(),
        "Skipif": st.sampled_from(["onpath python3", "exists /etc/hosts", "ONPATH  node"]),
        "Timeout": st.integers(1, 1000) | st.floats(0.5, 100),
        "Setenv": env,
    })
    return texts | full


def lifecycle() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={
        "Setenv": env, "Install": step(), "Run": step(), "Shutdown": step(),
        "Recover": step(), "Bootstrap": step()})


artifact = st.fixed_dictionaries(
    {"URI": st.sampled_from(["s3://b/k/a.zip", "greengrass:lambda-artifact.zip", "s3://x/y"])},
    optional={"Unarchive": st.sampled_from(["NONE", "ZIP", "zip"]),
              "Permission": st.fixed_dictionaries({}, optional={
                  "Read": st.sampled_from(["NONE", "OWNER", "ALL"]),
                  "Execute": st.sampled_from(["NONE", "OWNER", "ALL"])}),
              "Digest": st.just("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
              "Algorithm": st.sampled_from(["SHA-256", "sha512"])})

manifest = st.fixed_dictionaries({}, optional={
    "Name": texts,
    "Platform": st.dictionaries(st.sampled_from(["os", "architecture", "gpu"]),
                                st.sampled_from(["linux", "*", "/a.*/", "amd64"]), max_size=2),
    "Lifecycle": lifecycle(),
    "Selections": st.lists(st.sampled_from(["linux", "all"]), max_size=2),
    "Artifacts": st.lists(artifact, max_size=1),
})

recipes = st.fixed_dictionaries(
    {"RecipeFormatVersion": st.just("2020-01-25"), "ComponentName": names,
     "ComponentVersion": versions},
    optional={
        "ComponentType": st.sampled_from(["aws.greengrass.generic", "aws.greengrass.lambda"]),
        "ComponentDescription": st.text(max_size=10),
        "ComponentPublisher": st.text(max_size=10),
        "ComponentSource": st.text(max_size=10),
        "ComponentConfiguration": st.fixed_dictionaries({"DefaultConfiguration": st.dictionaries(
            st.text(max_size=5), json_values, max_size=3)}),
        "ComponentDependencies": st.dictionaries(names, st.fixed_dictionaries({}, optional={
            "VersionRequirement": st.sampled_from(["^1.0.0", ">=2.0.0 <3.0.0", "*", "1.2.3"]),
            "DependencyType": st.sampled_from(["HARD", "SOFT", "soft"])}), max_size=2),
        "Manifests": st.lists(manifest, max_size=2),
        "Lifecycle": lifecycle(),
    })


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(recipes)
def test_to_dict_round_trips(data: dict[str, Any]) -> None:
    try:
        recipe = parse_recipe(data, "gen.yaml")
    except ValidationError:
        return  # e.g. a self-dependency or two artifacts with one file name
    stored = json.loads(json.dumps(recipe.to_dict()))
    assert parse_recipe(stored, "stored") == recipe
    assert parse_recipe(stored, "stored").to_dict() == stored


junk = st.recursive(json_scalars | st.binary(max_size=3) | st.tuples(st.integers()),
                    lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=12) | st.integers(), inner, max_size=4),
                    max_leaves=10)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A valid recipe with one value somewhere replaced by junk."""
    doc: Any = draw(recipes)
    paths: list[list[Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, [*path, i])
    walk(doc, [])
    path = draw(st.sampled_from(paths))
    value = draw(junk)
    if not path:
        return value
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated() | junk)
def test_bad_input_only_raises_validation_error(data: Any) -> None:
    try:
        parse_recipe(data, "junk.yaml")
    except ValidationError as exc:
        assert exc.source == "junk.yaml"
        assert str(exc).startswith("junk.yaml: ")
