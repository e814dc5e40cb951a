"""import → deploy → invoke against a real core (``sprig core run``): a Python function from a
Lambda zip (in a GreengrassContainer), a Node.js function from a directory (NoContainer), a Java
function from a jar, and the recipe AWS generated (reference §2.1) deployed unchanged with its
artifact."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig.cli.client import ManagementClient
from sprig.cli.lambda_cmd import add_parser

from .helpers import NODE_HANDLER, PYTHON_HANDLER, golden
from .test_run_code import JAVA

pytestmark = pytest.mark.e2e
SRC = Path(__file__).resolve().parents[3]


class RunningCore:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True)
        # Functions run as root here: the test interpreter may live under /root (pyenv).
        (root / "config.yaml").write_text("runWithDefault:\n  posixUser: root\n")
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.root = root
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sprig", "core", "run", "--root", str(root)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if "ready: management API" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30) or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("the core did not start:\n" + "".join(self.lines))
        self.client = ManagementClient(root)

    def invoke(self, name: str, event: Any) -> Any:
        r = self.client.call("invoke", {
            "function": name, "payload": base64.b64encode(json.dumps(event).encode()).decode(),
            "invocationType": "RequestResponse"})
        assert r["functionError"] is None, r
        return json.loads(base64.b64decode(r["payload"]))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[RunningCore]:
    c = RunningCore(tmp_path / "root")
    yield c
    c.stop()


def sprig_lambda(core: RunningCore, argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="sprig")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lambda", *argv, "--root", str(core.root)])
    rc: int = args.func(args)
    return rc


def test_python_from_a_zip(tmp_path: Path, core: RunningCore) -> None:
    code = tmp_path / "function.zip"
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("lambda_function.py", PYTHON_HANDLER)
    # The default isolation: GreengrassContainer.
    assert sprig_lambda(core, ["import", str(code), "--deploy", "--name", "py-fn",
                               "--runtime", "python3.11",
                               "--handler", "lambda_function.lambda_handler"]) == 0
    assert core.invoke("py-fn", {"n": 1}) == {"echo": {"n": 1}}


def test_nodejs_from_a_directory(tmp_path: Path, core: RunningCore) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.js").write_text(NODE_HANDLER)
    assert sprig_lambda(core, ["import", str(code), "--deploy", "--name", "node-fn",
                               "--runtime", "nodejs20.x", "--isolation", "NoContainer",
                               "--handler", "index.handler"]) == 0
    assert core.invoke("node-fn", {"n": 2}) == {"echo": {"n": 2}}


def test_java_from_a_jar(tmp_path: Path, core: RunningCore) -> None:
    src = tmp_path / "src" / "example"
    src.mkdir(parents=True)
    (src / "Hello.java").write_text(JAVA)
    subprocess.run(["javac", "-d", str(tmp_path / "classes"), str(src / "Hello.java")],
                   check=True)
    jar = tmp_path / "hello.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(tmp_path / "classes"), "."], check=True)
    assert sprig_lambda(core, ["import", str(jar), "--deploy", "--name", "java-fn",
                               "--runtime", "java17", "--isolation", "NoContainer",
                               "--handler", "example.Hello::handleRequest"]) == 0
    assert core.invoke("java-fn", "sprig") == "hello sprig"


def test_the_aws_generated_recipe_deploys_unchanged(tmp_path: Path, core: RunningCore) -> None:
    recipe = golden("aws_generated_recipe.json")
    artifacts = tmp_path / "artifacts" / "example-lambda-python" / "8.0.0"
    artifacts.mkdir(parents=True)
    with zipfile.ZipFile(artifacts / "lambda-artifact.zip", "w") as zf:
        zf.writestr("lambda_function.py", PYTHON_HANDLER)
    data = (artifacts / "lambda-artifact.zip").read_bytes()
    recipe["Manifests"][0]["Artifacts"][0]["Digest"] = \
        base64.b64encode(hashlib.sha256(data).digest()).decode()
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "example.json").write_text(json.dumps(recipe))
    summary = core.client.call("deployment.create", {
        "deployment": {"merge": {"example-lambda-python": "8.0.0"}},
        "recipeDir": str(tmp_path / "recipes"), "artifactDir": str(tmp_path / "artifacts"),
        "wait": True})
    assert summary["status"] == "SUCCEEDED", summary
    assert core.invoke("example-lambda-python", {"aws": 8}) == {"echo": {"aws": 8}}
    states = {c["name"]: c["state"] for c in core.client.call("component.list", {})}
    assert states["aws.greengrass.LambdaLauncher"] == "FINISHED"
    assert states["aws.greengrass.LambdaRuntimes"] == "FINISHED"
    assert states["aws.greengrass.LambdaManager"] == "RUNNING"
