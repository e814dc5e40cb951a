"""``--deploy`` and ``export-params`` talk to the core through the real management client over
a real Unix socket; here a small HTTP server on the root's socket plays the core's part,
recording each call and answering as the core's ``deployment.create`` / ``component.details``
do."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig.lambda_import.documents import parameters_document
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags
from sprig.paths import RootLayout

from .helpers import python_code
from .test_cli import run


class Core:
    """Answers ``POST /rpc`` on ``run/sprig.sock`` with canned results, recording the calls."""

    def __init__(self, root: Path) -> None:
        self.layout = RootLayout(root)
        self.layout.create()
        self.replies: dict[str, Any] = {}
        self.calls: list[tuple[str, dict[str, Any], list[str]]] = []
        core = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                params = body["params"]
                seen = []   # the files the core can see while the CLI waits
                for key in ("recipeDir", "artifactDir"):
                    if key in params:
                        seen += sorted(str(p.relative_to(params[key]))
                                       for p in Path(params[key]).rglob("*") if p.is_file())
                core.calls.append((body["method"], params, seen))
                reply = core.replies[body["method"]]
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = socketserver.UnixStreamServer(str(self.layout.management_socket), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    c = Core(tmp_path / "root")
    yield c
    c.close()


def test_deploy_without_out_sends_the_component_and_waits(
        tmp_path: Path, core: Core, capsys: pytest.CaptureFixture[str]) -> None:
    core.replies["deployment.create"] = {"result": {"deploymentId": "d-1",
                                                    "status": "SUCCEEDED", "reason": None}}
    rc = run(["lambda", "import", "--root", str(core.layout.root), str(python_code(tmp_path)),
              "--deploy", "--name", "hello", "--runtime", "python3.11",
              "--handler", "lambda_function.lambda_handler"])
    assert rc == 0
    [(method, params, seen)] = core.calls
    assert method == "deployment.create"
    assert params["deployment"] == {"merge": {"hello": "1.0.0"}}
    assert params["wait"] is True
    assert seen == ["hello-1.0.0.json", "hello/1.0.0/lambda-artifact.zip"]
    assert not Path(params["recipeDir"]).exists()   # the temporary output is cleaned up
    assert capsys.readouterr().out == "Deployment d-1: SUCCEEDED\n"


def test_a_failed_deployment_exits_1_with_its_reason(
        tmp_path: Path, core: Core, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    core.replies["deployment.create"] = {"result": {
        "deploymentId": "d-2", "status": "FAILED",
        "reason": "hello: runtime python3.11 is not installed"}}
    monkeypatch.chdir(tmp_path)
    rc = run(["lambda", "import", "--root", str(core.layout.root), str(python_code(tmp_path)),
              "--out", "out", "--deploy", "--name", "hello",
              "--runtime", "python3.11", "--handler", "lambda_function.lambda_handler"])
    assert rc == 1
    # The core runs elsewhere: it is given absolute directories.
    assert core.calls[0][1]["recipeDir"] == str(tmp_path / "out" / "recipes")
    assert core.calls[0][1]["artifactDir"] == str(tmp_path / "out" / "artifacts")
    assert capsys.readouterr().err == \
        "Deployment d-2: FAILED (hello: runtime python3.11 is not installed)\n"
    assert (tmp_path / "out/recipes/hello-1.0.0.json").exists()   # --out is kept


def test_export_params_prints_the_deployed_parameters(
        tmp_path: Path, core: Core, capsys: pytest.CaptureFixture[str]) -> None:
    result = import_function(python_code(tmp_path), tmp_path / "out", ImportFlags(
        name="hello", runtime="python3.11", handler="lambda_function.lambda_handler",
        timeout="9", exec_args=("-X",), event_sources=("a/b:PUB_SUB",)))
    config = json.loads(json.dumps(result.recipe["ComponentConfiguration"]
                                   ["DefaultConfiguration"]))
    config["timeoutInSeconds"] = 12.0   # changed by a later deployment; stored as a float
    core.replies["component.details"] = {"result": {
        "name": "hello", "version": "1.0.0", "state": "RUNNING",
        "componentType": "aws.greengrass.lambda", "configuration": config,
        "recipe": result.recipe}}
    assert run(["lambda", "export-params", "--root", str(core.layout.root), "hello"]) == 0
    expected = parameters_document(result.component.config, result.component.exec_args)
    expected["timeoutInSeconds"] = 12
    assert json.loads(capsys.readouterr().out) == expected
    assert core.calls[0][:2] == ("component.details", {"name": "hello"})

    assert run(["lambda", "export-params", "--root", str(core.layout.root), "hello",
                "--full"]) == 0
    full = json.loads(capsys.readouterr().out)["lambdaFunction"]
    assert full["lambdaArn"] == "arn:aws:lambda:us-east-1:000000000000:function:hello:1"
    assert (full["componentName"], full["componentVersion"]) == ("hello", "1.0.0")


def test_export_params_refuses_a_generic_component(
        core: Core, capsys: pytest.CaptureFixture[str]) -> None:
    core.replies["component.details"] = {"result": {
        "name": "web", "version": "1.0.0", "componentType": "aws.greengrass.generic",
        "configuration": {}, "recipe": {}}}
    assert run(["lambda", "export-params", "--root", str(core.layout.root), "web"]) == 1
    assert capsys.readouterr().err == (
        "sprig lambda export-params: name: component web is not a Lambda function (got "
        "ComponentType 'aws.greengrass.generic'); allowed: a component of type "
        "aws.greengrass.lambda\n")


def test_export_params_reports_an_api_error(
        core: Core, capsys: pytest.CaptureFixture[str]) -> None:
    core.replies["component.details"] = {"error": {"type": "ValidationError",
                                                   "message": "name: no such component"}}
    assert run(["lambda", "export-params", "--root", str(core.layout.root), "nope"]) == 1
    assert capsys.readouterr().err == \
        "sprig lambda export-params: name: no such component\n"


def test_without_a_core_the_client_error_goes_to_sprig_main(tmp_path: Path) -> None:
    from sprig.cli.client import CoreNotRunning

    root = tmp_path / "empty-root"
    for argv in (["lambda", "export-params", "hello", "--root", str(root)],
                 ["lambda", "import", str(python_code(tmp_path)), "--deploy", "--name", "f",
                  "--runtime", "python3.11", "--handler", "a.b", "--root", str(root)]):
        with pytest.raises(CoreNotRunning) as info:
            run(argv)
        assert str(info.value).startswith(f"no Sprig core is running on {root}")
