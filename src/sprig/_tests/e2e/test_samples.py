"""The sample functions of the README's first command, each in its default GreengrassContainer
on a real core: Python (pinned), Node.js (on-demand) and Java — the way a new user meets Sprig.
(A Java sandbox once failed to start only here: nothing else ran Java through a real sandbox.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sprig._tests.reliability.support import invoke
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags
from sprig.runtimes.java import ensure_runtime_jar
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[4] / "samples" / "functions"


def _java_major() -> str:
    out = subprocess.run(["java", "-XshowSettings:properties", "-version"],
                         capture_output=True, text=True).stderr
    found = re.search(r"java\.specification\.version = (\d+)", out)
    assert found, out
    return found.group(1)


def _hello_jar(work: Path) -> Path:
    runtime_jar = ensure_runtime_jar(work / "java-cache")
    classes = work / "classes"
    classes.mkdir(parents=True)
    subprocess.run(["javac", "-cp", str(runtime_jar), "-d", str(classes),
                    str(SAMPLES / "java-hello/src/example/Hello.java")], check=True)
    jar = work / "hello.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(classes), "."], check=True)
    return jar


@pytest.mark.skipif(shutil.which("javac") is None or shutil.which("node") is None,
                    reason="needs a JDK and Node.js (scripts/setup installs both)")
def test_the_sample_functions_run_in_their_sandboxes(core: CoreProcess,
                                                     public_tmp: Path) -> None:
    out = public_tmp / "out"
    import_function(SAMPLES / "python-counter", out, ImportFlags(
        name="PythonCounter", runtime="python3.11", handler="lambda_function.lambda_handler",
        pinned=True))
    import_function(SAMPLES / "node-greeter", out, ImportFlags(
        name="NodeGreeter", runtime="nodejs20.x", handler="index.handler", pinned=False,
        memory_kb="65536"))
    import_function(_hello_jar(public_tmp / "java"), out, ImportFlags(
        name="JavaHello", runtime=f"java{_java_major()}", handler="example.Hello::handleRequest",
        memory_kb="262144", timeout="30"))
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"PythonCounter": "1.0.0", "NodeGreeter": "1.0.0",
                                "JavaHello": "1.0.0"})
    assert result["status"] == "SUCCEEDED", (result, core.log("JavaHello")[-2000:])
    py = invoke(core, "PythonCounter", {"name": "test"})["payload"]
    assert py["message"] == "Hello from Python, test!" and py["invocations"] == 1
    node = invoke(core, "NodeGreeter", {"name": "test"})["payload"]
    assert node["message"].startswith("Hello from Node.js") and node["message"].endswith("test!")
    java = invoke(core, "JavaHello", {"name": "test"})["payload"]
    assert java.startswith("Hello from Java") and java.endswith("test!"), java
