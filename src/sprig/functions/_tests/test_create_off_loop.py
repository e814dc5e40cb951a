"""Resolving a Java function's runtime (javac builds the runtime jar) leaves the event loop free.

The proof needs no clock: ``javac`` on PATH is a gate that, once running, connects to a Unix
socket served by the test's event loop and compiles only after the loop answered. If the build
ran on the loop, nobody would answer: the gate gives up, the build fails and so does the test.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from sprig.functions.config import LambdaConfig
from sprig.functions.function import Function
from sprig.functions.worker import FunctionSpec
from sprig.lambda_params import ContainerMode
from sprig.runtimes import java as jrt

JAVAC = shutil.which("javac")
pytestmark = pytest.mark.skipif(shutil.which("java") is None or JAVAC is None,
                                reason="needs a JDK (java and javac)")

GATE = """#!{python}
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect({sock!r})
s.sendall(b"compiling\\n")
s.settimeout(15)
try:
    answer = s.recv(16)
except OSError:
    answer = b""
if answer != b"go\\n":
    sys.exit("javac gate: the event loop did not answer while the build ran")
os.execv({javac!r}, [{javac!r}] + sys.argv[1:])
"""


def java_spec(tmp_path: Path, cache: Path) -> FunctionSpec:
    (tmp_path / "work").mkdir(exist_ok=True)
    (tmp_path / "code").mkdir(exist_ok=True)
    return FunctionSpec(
        component_name="javacomp", component_version="1.0.0", function_name="javafn",
        function_version="1", function_arn="arn:aws:lambda:us-east-1:1:function:javafn:1",
        runtime="java11", handler="demo.Main::handle", code_dir=tmp_path / "code",
        config=LambdaConfig(container_mode=ContainerMode.NO_CONTAINER),
        work_dir=tmp_path / "work", cache_dir=cache)


async def gated_javac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      answered: list[str]) -> asyncio.Server:
    """Put the gate first on PATH; its server answers every compile with "go"."""
    assert JAVAC is not None
    sock = str(tmp_path / "gate.sock")

    async def on_gate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered.append((await reader.readline()).decode().strip())
        writer.write(b"go\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(on_gate, sock)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gate = bin_dir / "javac"
    gate.write_text(GATE.format(python=sys.executable, sock=sock,
                                javac=str(Path(JAVAC).resolve())))
    gate.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(JAVAC).parent}:/usr/bin:/bin")
    return server


async def test_create_builds_the_java_runtime_jar_off_the_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answered: list[str] = []
    server = await gated_javac(tmp_path, monkeypatch, answered)
    cache = tmp_path / "cache"
    try:
        fn = await asyncio.wait_for(Function.create(java_spec(tmp_path, cache)), 120)
    finally:
        server.close()
    assert answered and answered[0] == "compiling"        # the loop served during the build
    jar = jrt.runtime_jar_path(cache)
    assert jar.is_file()
    assert any(str(jar) in arg for arg in fn.runtime.argv)
    await fn.stop()


async def test_reconfigure_to_java_builds_off_the_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    python = FunctionSpec(
        component_name="javacomp", component_version="1.0.0", function_name="javafn",
        function_version="1", function_arn="arn:aws:lambda:us-east-1:1:function:javafn:1",
        runtime=f"python3.{sys.version_info.minor}", handler="main.handler",
        code_dir=tmp_path, config=LambdaConfig(container_mode=ContainerMode.NO_CONTAINER),
        work_dir=tmp_path, cache_dir=cache)
    fn = Function(python)
    answered: list[str] = []
    server = await gated_javac(tmp_path, monkeypatch, answered)
    try:
        await asyncio.wait_for(fn.reconfigure(java_spec(tmp_path, cache)), 120)
    finally:
        server.close()
        await fn.stop()
    assert answered and answered[0] == "compiling"
    assert fn.spec.runtime == "java11"
    assert jrt.runtime_jar_path(cache).is_file()
