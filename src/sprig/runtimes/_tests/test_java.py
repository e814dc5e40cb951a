"""The Java runtime against Sprig's Runtime API server: handler kinds, code layouts, errors.

The ``code`` fixture (conftest) compiles the runtime jar once per session and the sample function
in ``fixtures/java`` against it, packaged as a jar, a directory and a zip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sprig.runtimes import java

JAVA = shutil.which("java")
JAVAC = shutil.which("javac")
JAR = shutil.which("jar")

pytestmark = pytest.mark.skipif(JAVA is None or JAVAC is None or JAR is None,
                                reason="needs a JDK (java, javac, jar) on PATH")


async def start(workers: Any, make_env: Any, code: Any, handler: str, *,
                layout: str = "directory", memory_mb: int = 128, **extra: str) -> Any:
    assert JAVA is not None
    code_path: Path = getattr(code, layout)
    argv = java.launch_argv(JAVA, code.runtime_jar, code_path, handler, memory_mb)
    root = code_path if code_path.is_dir() else code_path.parent
    if layout == "zip":     # unpack into the session's temporary directory, not /tmp
        (root / "tmp").mkdir(exist_ok=True)
        argv.insert(1, f"-Djava.io.tmpdir={root / 'tmp'}")
    return await workers.start(argv, make_env(handler, root, **extra), cwd=root)


# ---- Building and launching ---------------------------------------------------------------


def test_java_major_version() -> None:
    assert JAVA is not None
    out = subprocess.run([JAVA, "-version"], capture_output=True, text=True).stderr
    assert f'version "{java.java_major_version(JAVA)}' in out
    with pytest.raises(java.JavaRuntimeUnavailable, match="no-such-java"):
        java.java_major_version("/nonexistent/no-such-java")


def test_launch_argv() -> None:
    jar = Path("/cache/rt.jar")
    argv = java.launch_argv("java", jar, Path("/code"), "a.B::c", 512)
    assert argv[0] == "java"
    assert "-XX:+UseSerialGC" in argv and "-XX:TieredStopAtLevel=1" in argv
    assert "-Xmx435m" in argv
    cp = argv[argv.index("-cp") + 1].split(":")
    assert cp == ["/cache/rt.jar", "/code", "/code/classes", "/code/lib/*", "/code/*"]
    assert argv[-2:] == [java.MAIN_CLASS, "a.B::c"]
    assert not any(a.startswith("-Xmx") for a in java.launch_argv("java", jar, Path("/c"), "h", 0))
    zipped = java.launch_argv("java", jar, Path("/f.zip"), "h", 128)
    assert "-Dsprig.codeZip=/f.zip" in zipped and "-Xmx80m" in zipped
    assert zipped[zipped.index("-cp") + 1] == "/cache/rt.jar"
    jarred = java.launch_argv("java", jar, Path("/f.jar"), "h", 64)
    assert jarred[jarred.index("-cp") + 1] == "/cache/rt.jar:/f.jar"
    assert "-Xmx16m" in jarred


def test_runtime_jar_is_built_once_concurrently(tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(java.ensure_runtime_jar(tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2 and results[0] == results[1]
    jar = results[0]
    assert jar.name == f"sprig-java-runtime-{java.sources_digest()}.jar"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".jar") == [jar.name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]
    with zipfile.ZipFile(jar) as zf:
        names = set(zf.namelist())
        assert "io/sprig/runtime/Bootstrap.class" in names
        assert "com/amazonaws/services/lambda/runtime/RequestHandler.class" in names
        assert b"Main-Class: io.sprig.runtime.Bootstrap" in zf.read("META-INF/MANIFEST.MF")
        # --release 8: class file major version 52, so java8 functions can use the jar.
        header = zf.read("io/sprig/runtime/Bootstrap.class")[:8]
        assert int.from_bytes(header[6:8], "big") == 52
    stamp = jar.stat().st_mtime_ns
    assert java.ensure_runtime_jar(tmp_path) == jar
    assert jar.stat().st_mtime_ns == stamp


def test_missing_javac_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(java.JavaRuntimeUnavailable, match="javac was not found on PATH"):
        java.ensure_runtime_jar(tmp_path / "cache")
    with pytest.raises(java.JavaRuntimeUnavailable, match="cannot run /nonexistent/javac"):
        java.ensure_runtime_jar(tmp_path / "cache", javac="/nonexistent/javac")


def test_heap_leaves_room_for_the_jvm() -> None:
    assert java.heap_mb(0) is None
    assert java.heap_mb(64) == 16
    assert java.heap_mb(128) == 80
    assert java.heap_mb(1024) == 870


# ---- Handlers -----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["directory", "jar", "zip"])
async def test_request_handler_map_to_string_in_every_layout(
        rapi: Any, workers: Any, make_env: Any, code: Any, layout: str) -> None:
    await start(workers, make_env, code, "example.MapHandler", layout=layout)
    out = await rapi.invoke({"a": 1})
    assert out.kind == "response", out.body
    text = out.json
    assert isinstance(text, str)
    assert "input={a=1};calls=1;greeting=hello java;" in text
    assert "functionName=sample;functionVersion=$LATEST;memory=128;" in text
    again = await rapi.invoke({"b": [True, None]})
    assert "input={b=[true, null]};calls=2;" in again.json


async def test_context_and_client_context(rapi: Any, workers: Any, make_env: Any,
                                          code: Any) -> None:
    await start(workers, make_env, code, "example.ContextEcho::handle")
    before = time.time()
    out = await rapi.invoke({"x": [1, 2.5, "é"]}, client_context={
        "custom": {"subject": "topic/1", "n": 3}, "env": {"k": "v"},
        "client": {"installation_id": "inst"}})
    doc = out.json
    assert doc["input"] == {"x": [1, 2.5, "é"]}
    assert doc["calls"] == 1
    assert doc["functionName"] == "sample" and doc["functionVersion"] == "$LATEST"
    assert doc["memory"] == 128
    assert doc["logGroup"] == "/aws/lambda/sample"
    assert doc["logStream"] == "2026/11/27/[$LATEST]sprig"
    assert doc["arn"].endswith(":function:sample:$LATEST")
    assert 0 < doc["remaining"] <= 60_000 - int((time.time() - before) * 1000) + 1000
    assert doc["custom"] == {"subject": "topic/1", "n": "3"}
    assert doc["env"] == {"k": "v"}
    assert doc["installationId"] == "inst"
    assert len(doc["requestId"]) == 36
    assert (await rapi.invoke(None)).json["input"] is None
    proc = workers.procs[-1]
    proc.kill()
    await proc.wait()
    log = await workers.output(proc)
    assert "ContextEcho call 1\n" in log and "ContextEcho call 2\n" in log
    assert "via LambdaRuntime\n" in log


async def test_request_handler_string_to_string(rapi: Any, workers: Any, make_env: Any,
                                                code: Any) -> None:
    await start(workers, make_env, code, "example.StringHandler")
    out = await rapi.invoke("hello")
    assert out.content_type == "application/json"
    assert out.json == 'HELLO "quoted" é'


async def test_request_stream_handler(rapi: Any, workers: Any, make_env: Any,
                                      code: Any) -> None:
    await start(workers, make_env, code, "example.StreamHandler")
    out = await rapi.invoke(b'{"ab": 1}')
    assert out.body == b'}1 :"ba"{'


async def test_pojo_in_and_out(rapi: Any, workers: Any, make_env: Any, code: Any) -> None:
    await start(workers, make_env, code, "example.PojoHandler")
    order = {"id": "o-1", "quantity": 2, "discount": 1, "unknown": "ignored",
             "items": [{"sku": "a", "price": 1.5}, {"sku": "b", "price": 2}]}
    out = await rapi.invoke(order)
    assert out.kind == "response", out.body
    assert out.json == {"orderId": "o-1", "paid": False, "total": 6.0}
    bad = await rapi.invoke({"id": "o-2", "quantity": "two", "items": []})
    assert bad.kind == "error"
    assert bad.json["errorType"] == "Runtime.UnmarshalError"
    assert "event.quantity" in bad.json["errorMessage"]


@pytest.mark.parametrize(("handler", "payload", "expected"), [
    ("example.Plain::sum", [1, 2, 3], b"6"),
    ("example.Plain::describe", {"a": 1, "b": 2}, b'[2,"sample"]'),
    ("example.Plain::copy", "x", b'copied:"x"'),
    ("example.Plain::nothing", {}, b"null"),
])
async def test_plain_methods(rapi: Any, workers: Any, make_env: Any, code: Any, handler: str,
                             payload: Any, expected: bytes) -> None:
    await start(workers, make_env, code, handler)
    out = await rapi.invoke(payload)
    assert out.kind == "response", out.body
    assert out.body == expected


async def test_binary_encoding_gives_bytes(rapi: Any, workers: Any, make_env: Any,
                                           code: Any) -> None:
    await start(workers, make_env, code, "example.Plain::binary",
                AWS_GREENGRASS_LAMBDA_ENCODING_TYPE="binary")
    out = await rapi.invoke(b"\x00\x01{", content_type="application/json")
    assert out.body == b"\xff\x00\x01{"
    assert out.content_type == "application/octet-stream"


async def test_exception_becomes_error_document(rapi: Any, workers: Any, make_env: Any,
                                                code: Any) -> None:
    await start(workers, make_env, code, "example.Failing")
    out = await rapi.invoke({"id": 7})
    assert out.kind == "error"
    doc = out.json
    assert doc["errorType"] == "example.Failing$OrderRejected"
    assert doc["errorMessage"] == "order 7 rejected"
    assert doc["stackTrace"][0].startswith("example.Failing.handleRequest(Failing.java:")
    assert doc["cause"]["errorType"] == "java.lang.IllegalStateException"
    assert doc["cause"]["errorMessage"] == "stock is empty"
    # The worker survives a handled error.
    assert (await rapi.invoke({"id": 8})).json["errorMessage"] == "order 8 rejected"


@pytest.mark.parametrize(("handler", "error_type", "message"), [
    ("example.Nope", "Runtime.ImportModuleError", "Class not found: example.Nope"),
    ("example.Plain", "Runtime.HandlerNotFound", "does not implement RequestHandler"),
    ("example.Plain::missing", "Runtime.HandlerNotFound", "No public method named missing"),
    ("example.Plain::notAHandler", "Runtime.HandlerNotFound", "notAHandler"),
    ("example.Plain:sum", "Runtime.MalformedHandlerName", "example.Plain:sum"),
    ("", "Runtime.MalformedHandlerName", "Bad handler"),
    ("example.BrokenInit", "java.lang.IllegalArgumentException", "missing configuration"),
])
async def test_init_errors(rapi: Any, workers: Any, make_env: Any, code: Any, handler: str,
                           error_type: str, message: str) -> None:
    proc = await start(workers, make_env, code, handler)
    out = await rapi.wait_init_error()
    assert out.json["errorType"] == error_type
    assert message in out.json["errorMessage"]
    assert isinstance(out.json["stackTrace"], list)
    assert await workers.exit_code(proc) == 1



async def test_handler_from_the_environment(rapi: Any, workers: Any, make_env: Any,
                                            code: Any) -> None:
    """An empty handler argument means _HANDLER, as the other runtimes read it."""
    assert JAVA is not None
    argv = java.launch_argv(JAVA, code.runtime_jar, code.directory, "", 0)
    await workers.start(argv, make_env("example.StringHandler", code.directory),
                        cwd=code.directory)
    assert (await rapi.invoke("env")).json == 'ENV "quoted" é'


async def test_json_round_trip(rapi: Any, workers: Any, make_env: Any, code: Any) -> None:
    """The built-in JSON parser and serializer keep every JSON value intact."""
    await start(workers, make_env, code, "example.ContextEcho::handle")
    samples: list[Any] = [
        {"unicode": "é ü 😀 \u2028 \u0001", "escapes": "quote\" backslash\\ \n\t\r\b\f /"},
        [0, -1, 2**31, -(2**31) - 1, 2**63, 2**70, 1.5, -0.25, 1e-7, 6.02e23, 3.0],
        {"empty": {}, "list": [], "null": None, "t": True, "f": False, "s": ""},
        "plain string", 42, None, [[[[[["deep"]]]]]],
    ]
    for sample in samples:
        out = await rapi.invoke(sample)
        assert out.kind == "response", out.body
        assert out.json["input"] == sample
    too_deep = await rapi.invoke(b"[" * 600 + b"]" * 600)
    assert too_deep.kind == "error"
    assert too_deep.json["errorType"] == "Runtime.UnmarshalError"
    assert "nested deeper than 512 levels" in too_deep.json["errorMessage"]
    bad = await rapi.invoke(b'{"a": tru}')
    assert bad.json["errorType"] == "Runtime.UnmarshalError"
    assert "offset" in bad.json["errorMessage"]
    assert (await rapi.invoke([1])).json["input"] == [1]        # the worker carries on


async def test_zip_is_unpacked_once_for_all_workers(workers: Any, code: Any,
                                                    tmp_path: Path) -> None:
    """Workers of one zip share one unpacked copy in java.io.tmpdir, renamed into place."""
    from sprig.runtime_api import Job, RuntimeSession

    assert JAVA is not None
    argv = java.launch_argv(JAVA, code.runtime_jar, code.zip, "example.StringHandler", 128)
    argv.insert(1, f"-Djava.io.tmpdir={tmp_path}")
    for _ in range(2):
        session = await RuntimeSession.open(log=lambda line: None)
        try:
            env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": session.address}
            proc = await workers.start(argv, env, cwd=tmp_path)
            job = Job.for_payload(b'"zip"', function_arn="arn", timeout_s=30)
            out = await asyncio.wait_for(session.run(job), 30)
            assert out.body == b'"ZIP \\"quoted\\" \xc3\xa9"'
            proc.kill()
            await proc.wait()
        finally:
            await session.aclose()
    unpacked = [p.name for p in tmp_path.iterdir()]
    assert len(unpacked) == 1 and unpacked[0].startswith("sprig-java-code-"), unpacked
    assert (tmp_path / unpacked[0] / "classes" / "example" / "StringHandler.class").is_file()


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(java.JavaRuntimeUnavailable, match="Cannot build the Sprig Java runtime"):
        java.ensure_runtime_jar(blocker / "cache")
