"""The output layout, and that nothing is written when validation fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags

from .helpers import python_code

FLAGS = ImportFlags(name="hello", runtime="python3.11", handler="lambda_function.lambda_handler")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_layout_is_what_deployment_create_takes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = import_function(python_code(tmp_path), out, FLAGS)
    assert _files(out) == ["artifacts", "artifacts/hello", "artifacts/hello/1.0.0",
                           "artifacts/hello/1.0.0/lambda-artifact.zip", "recipes",
                           "recipes/hello-1.0.0.json"]
    assert result.recipe_dir == out / "recipes"
    assert result.artifact_dir == out / "artifacts"
    assert json.loads(result.recipe_path.read_text()) == result.recipe


def test_a_second_import_sits_beside_the_first_and_a_reimport_replaces(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = python_code(tmp_path)
    import_function(code, out, FLAGS)
    import_function(code, out, ImportFlags(name="other", runtime="python3.11", handler="a.b"))
    (code / "lambda_function.py").write_text("def lambda_handler(e, c):\n    return 2\n")
    again = import_function(code, out, FLAGS)
    assert sorted(p.name for p in (out / "recipes").iterdir()) == [
        "hello-1.0.0.json", "other-1.0.0.json"]
    digest = again.recipe["Manifests"][0]["Artifacts"][0]["Digest"]
    assert json.loads(again.recipe_path.read_text())["Manifests"][0]["Artifacts"][0][
        "Digest"] == digest
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("bad", [
    {"flags": ImportFlags(name="hello", runtime="python3.11", handler="a.b", timeout="0")},
    {"flags": FLAGS, "doc": {"lambdaFunction": {"lambdaArn": "arn:aws:lambda:us-east-1:"
                                                "123456789012:function:f:$LATEST"}}},
    {"flags": FLAGS, "config": {"FunctionName": "f", "PackageType": "Image"}},
    {"flags": FLAGS, "code": "missing.zip"},
])
def test_nothing_is_written_when_validation_fails(tmp_path: Path, bad: dict[str, object],
                                                  ) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code = tmp_path / str(bad["code"]) if "code" in bad else python_code(tmp_path)
    with pytest.raises(ValidationError):
        import_function(code, out, bad["flags"], bad.get("doc"),  # type: ignore[arg-type]
                        bad.get("config"))
    assert _files(out) == []


def test_the_output_is_never_written_through_a_link(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "artifacts").symlink_to(elsewhere)
    with pytest.raises(ValidationError, match="is a symbolic link to"):
        import_function(python_code(tmp_path), out, FLAGS)
    assert list(elsewhere.iterdir()) == []
