"""``sprig lambda import`` through its real argparse parser: output, exit codes, messages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sprig.cli.lambda_cmd import add_parser

from .helpers import GOLDEN, python_code, without_digest


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sprig")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


def test_import_with_every_kind_of_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         ) -> None:
    out = tmp_path / "out"
    rc = run(["lambda", "import", str(python_code(tmp_path)), "--out", str(out),
              "--function-config", str(GOLDEN / "full_function_configuration.json"),
              "--lambda-function", str(GOLDEN / "full_lambda_function.json"),
              "--on-demand", "--timeout", "45", "--env", "FROM_FLAG=flag", "--env",
              "SHARED=flag", "--exec-arg=--verbose", "--exec-arg", "x y",
              "--volume", "/srv/models:/models:ro", "--volume", "/var/data:/data:rw",
              "--device", "/dev/i2c-1", "--memory-kb", "131072"])
    assert rc == 0
    recipe_path = out / "recipes" / "com.example.LambdaPython-8.1.0.json"
    recipe = json.loads(recipe_path.read_text())
    assert without_digest(recipe) == json.loads((GOLDEN / "full_recipe.json").read_text())
    stdout = capsys.readouterr().out
    assert f"Wrote {recipe_path}\n" in stdout
    assert (f"Deploy with: sprig deployment create --recipe-dir {out / 'recipes'} "
            f"--artifact-dir {out / 'artifacts'} --merge com.example.LambdaPython=8.1.0\n"
            ) in stdout


def test_event_sources_and_isolation_flags(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(["lambda", "import", str(python_code(tmp_path)), "--out", str(out), "--name",
                "fn", "--version", "2.3.4", "--runtime", "python3.11", "--handler",
                "lambda_function.lambda_handler", "--isolation", "NoContainer",
                "--event-source", "sensors/+/temp:IOT_CORE", "--event-source",
                "local:topic:PUB_SUB", "--encoding", "binary", "--region", "eu-west-3",
                "--format", "yaml"]) == 0
    import yaml

    recipe = yaml.safe_load((out / "recipes" / "fn-2.3.4.yaml").read_text())
    conf = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert conf["containerMode"] == "NoContainer"
    assert conf["inputPayloadEncodingType"] == "binary"
    assert conf["pubsubTopics"] == {"0": {"topic": "sensors/+/temp", "type": "IOT_CORE"},
                                    "1": {"topic": "local:topic", "type": "PUB_SUB"}}
    assert recipe["ComponentSource"] == "arn:aws:lambda:eu-west-3:000000000000:function:fn:2"


def test_invalid_input_exits_1_names_the_problem_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = run(["lambda", "import", str(python_code(tmp_path)), "--out", str(out), "--name", "f",
              "--runtime", "python3.11", "--handler", "a.b", "--device", "/tmp/gpio"])
    assert rc == 1
    assert capsys.readouterr().err == (
        "sprig lambda import: command line: --device.path: must be a device under /dev/ "
        "(got '/tmp/gpio'); allowed: a path under /dev/\n")
    assert not out.exists()


def test_a_document_that_is_not_json_is_named(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"FunctionName": ')
    rc = run(["lambda", "import", str(python_code(tmp_path)), "--out", str(tmp_path / "o"),
              "--function-config", str(bad)])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sprig lambda import: function configuration: {bad}: is not valid "
                          "JSON: Expecting value at line 1 column 18")


def test_out_is_required_without_deploy(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["lambda", "import", str(python_code(tmp_path))]) == 2
    assert "--out: is required unless --deploy is given" in capsys.readouterr().err


def test_pinned_and_on_demand_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        run(["lambda", "import", str(tmp_path), "--out", str(tmp_path), "--pinned",
             "--on-demand"])
    assert info.value.code == 2
