"""The imported artifact really runs: unarchived as Greengrass does (a ZIP artifact goes to
``<decompressedPath>/lambda-artifact/``, the path the recipe's setenv names), the handler of a
Python, a Node.js and a Java function is loaded and called by the real interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from sprig.lambda_import.importer import ImportResult, import_function
from sprig.lambda_import.params import ImportFlags
from sprig.lambda_import.recipe import ENV_ARTIFACT_PATH

from .helpers import NODE_HANDLER, PYTHON_HANDLER


def unarchive(result: ImportResult, decompressed: Path) -> Path:
    """Unzip the artifact as the nucleus does and resolve the setenv artifact path."""
    with zipfile.ZipFile(result.artifact_path) as zf:
        zf.extractall(decompressed / "lambda-artifact")
    template = result.recipe["Lifecycle"]["setenv"][ENV_ARTIFACT_PATH]
    return Path(template.replace("{artifacts:decompressedPath}", str(decompressed)))


def test_python_function_from_a_lambda_zip(tmp_path: Path) -> None:
    code = tmp_path / "function.zip"
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("lambda_function.py", PYTHON_HANDLER)
    result = import_function(code, tmp_path / "out", ImportFlags(
        name="py-fn", runtime="python3.11", handler="lambda_function.lambda_handler"))
    path = unarchive(result, tmp_path / "unarchived")
    module, func = result.component.handler.rsplit(".", 1)
    out = subprocess.run(
        [sys.executable, "-c", f"import sys, json; sys.path.insert(0, {str(path)!r}); "
         f"import {module}; print(json.dumps({module}.{func}({{'n': 1}}, None)))"],
        check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == {"echo": {"n": 1}}


def test_nodejs_function_from_a_directory(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.js").write_text(NODE_HANDLER)
    result = import_function(code, tmp_path / "out", ImportFlags(
        name="node-fn", runtime="nodejs20.x", handler="index.handler"))
    path = unarchive(result, tmp_path / "unarchived")
    script = (f"require({str(path / 'index.js')!r}).handler({{n: 2}})"
              ".then(r => console.log(JSON.stringify(r)))")
    out = subprocess.run(["node", "-e", script], check=True, capture_output=True,
                         text=True).stdout
    assert json.loads(out) == {"echo": {"n": 2}}


JAVA = """package example;
public class Hello {
    public String handleRequest(String input) { return "hello " + input; }
    public static void main(String[] args) {
        System.out.println(new Hello().handleRequest(args[0]));
    }
}
"""


def test_java_function_from_a_jar(tmp_path: Path) -> None:
    src = tmp_path / "src" / "example"
    src.mkdir(parents=True)
    (src / "Hello.java").write_text(JAVA)
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(src / "Hello.java")], check=True)
    jar = tmp_path / "hello.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(classes), "."], check=True)
    result = import_function(jar, tmp_path / "out", ImportFlags(
        name="java-fn", runtime="java17", handler="example.Hello::handleRequest"))
    path = unarchive(result, tmp_path / "unarchived")
    assert sorted(p.name for p in path.iterdir()) == ["hello.jar"]
    out = subprocess.run(["java", "-cp", str(path / "hello.jar"), "example.Hello", "sprig"],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "hello sprig"
    setenv = result.recipe["Lifecycle"]["setenv"]
    assert json.loads(setenv["AWS_GREENGRASS_LAMBDA_EXEC_ARGS"]) == [
        "java17", "com.amazonaws.greengrass.runtime.LambdaRuntime",
        "--handler=example.Hello::handleRequest"]
