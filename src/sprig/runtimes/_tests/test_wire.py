"""What our Node.js and Java bootstraps put on the wire, seen by a recording Runtime API server:
headers, content types, one keep-alive connection, and decoding by the server's Content-Type.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from sprig.runtimes import java, nodejs

NODE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nodejs" / "cjs"
NODE = shutil.which("node")
JAVA = shutil.which("java")

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed on this machine")
needs_java = pytest.mark.skipif(JAVA is None, reason="java is not installed on this machine")


async def start_node(workers: Any, recorder_env: Any, handler: str, **extra: str) -> Any:
    assert NODE is not None
    env = recorder_env(handler, NODE_FIXTURES, NODE_PATH=nodejs.node_path(NODE_FIXTURES), **extra)
    return await workers.start(nodejs.launch_argv(NODE), env, cwd=NODE_FIXTURES)


async def start_java(workers: Any, recorder_env: Any, code: Any, handler: str,
                     **extra: str) -> Any:
    assert JAVA is not None
    argv = java.launch_argv(JAVA, code.runtime_jar, code.directory, handler, 128)
    return await workers.start(argv, recorder_env(handler, code.directory, **extra),
                               cwd=code.directory)


@needs_node
async def test_node_uses_one_keep_alive_connection(recorder: Any, workers: Any,
                                                   recorder_env: Any) -> None:
    await start_node(workers, recorder_env, "index.handler")
    for i in range(3):
        out = await recorder.invoke({"i": i})
        assert out.headers["Content-Type"] == "application/json"
        assert out.json["echo"] == {"i": i}
    # next, response, next, response, next, response (and maybe the 4th next): one connection.
    assert len(recorder.peers) >= 6
    assert len(set(recorder.peers)) == 1


@needs_node
@pytest.mark.parametrize(("content_type", "is_buffer"), [
    ("application/json", False),
    ("application/json; charset=utf-8", False),
    ("text/plain", True),
])
async def test_node_decodes_by_content_type(recorder: Any, workers: Any, recorder_env: Any,
                                            content_type: str, is_buffer: bool) -> None:
    await start_node(workers, recorder_env, "index.handler")
    out = await recorder.invoke(b'{"a": 1}', content_type=content_type)
    assert out.json["isBuffer"] is is_buffer
    if is_buffer:
        assert out.json["echo"] == {"type": "Buffer", "data": list(b'{"a": 1}')}
    else:
        assert out.json["echo"] == {"a": 1}


@needs_node
async def test_node_error_headers(recorder: Any, workers: Any,
                                                 recorder_env: Any) -> None:
    await start_node(workers, recorder_env, "errors.handler")
    out = await recorder.invoke({"x": 1})
    assert out.kind == "error"
    assert out.headers["Content-Type"] == "application/json"
    assert out.json["errorType"] == "ValidationFailed"


@needs_node
async def test_node_init_error_header(recorder: Any, workers: Any, recorder_env: Any) -> None:
    proc = await start_node(workers, recorder_env, "index.nothing")
    out = await recorder.wait_init_error()
    assert out.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.HandlerNotFound"
    assert out.json["errorType"] == "Runtime.HandlerNotFound"
    assert await workers.exit_code(proc) == 1


@needs_java
async def test_java_uses_one_keep_alive_connection(recorder: Any, workers: Any,
                                                   recorder_env: Any, code: Any) -> None:
    await start_java(workers, recorder_env, code, "example.ContextEcho::handle")
    for i in range(3):
        out = await recorder.invoke({"i": i})
        assert out.headers["Content-Type"] == "application/json"
        assert out.json["input"] == {"i": i}
        assert out.json["traceId"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert len(recorder.peers) >= 6
    assert len(set(recorder.peers)) == 1


@needs_java
@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/json; charset=utf-8", {"a": 1}),
    ("text/plain", '{"a": 1}'),
])
async def test_java_decodes_by_content_type(recorder: Any, workers: Any, recorder_env: Any,
                                            code: Any, content_type: str, expected: Any) -> None:
    # JSON (whatever its parameters) is parsed for an Object input; any other content type is
    # raw text for a String input, not parsed.
    handler = ("example.ContextEcho::handle" if isinstance(expected, dict)
               else "example.StringHandler")
    await start_java(workers, recorder_env, code, handler)
    out = await recorder.invoke(b'{"a": 1}', content_type=content_type)
    assert out.kind == "response", out.body
    if isinstance(expected, dict):
        assert out.json["input"] == expected
    else:
        assert out.json == '{"A": 1} "quoted" é'


@needs_java
async def test_java_error_headers(recorder: Any, workers: Any, recorder_env: Any,
                                  code: Any) -> None:
    await start_java(workers, recorder_env, code, "example.Failing")
    out = await recorder.invoke({"id": 1})
    assert out.kind == "error"
    assert out.headers["Content-Type"] == "application/json"
    assert out.headers["Lambda-Runtime-Function-Error-Type"] == "example.Failing$OrderRejected"


@needs_java
async def test_java_init_error_header(recorder: Any, workers: Any, recorder_env: Any,
                                      code: Any) -> None:
    proc = await start_java(workers, recorder_env, code, "example.Missing")
    out = await recorder.wait_init_error()
    assert out.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ImportModuleError"
    assert out.json["errorMessage"] == "Class not found: example.Missing"
    assert await workers.exit_code(proc) == 1


def socket_only(unix_env: Any, keep_tcp: bool) -> Any:
    """``unix_env``, without AWS_LAMBDA_RUNTIME_API when ``keep_tcp`` is false."""
    def make(handler: str, root: Path, **extra: str) -> dict[str, str]:
        env: dict[str, str] = unix_env(handler, root, **extra)
        if not keep_tcp:
            del env["AWS_LAMBDA_RUNTIME_API"]
        return env
    return make


@needs_node
@pytest.mark.parametrize("keep_tcp", [True, False])
async def test_node_over_the_unix_socket(unix_rapi: Any, workers: Any, unix_env: Any,
                                         keep_tcp: bool) -> None:
    await start_node(workers, socket_only(unix_env, keep_tcp), "index.handler")
    for i in range(2):
        assert (await unix_rapi.invoke({"i": i})).json["echo"] == {"i": i}


@needs_java
@pytest.mark.parametrize("keep_tcp", [True, False])
async def test_java_over_the_unix_socket(unix_rapi: Any, workers: Any, unix_env: Any,
                                         code: Any, keep_tcp: bool) -> None:
    assert JAVA is not None
    if java.java_major_version(JAVA) < 16:
        pytest.skip("Unix sockets need Java 16 or later; older JVMs use TCP")
    await start_java(workers, socket_only(unix_env, keep_tcp), code,
                     "example.ContextEcho::handle")
    for i in range(2):
        assert (await unix_rapi.invoke({"i": i})).json["input"] == {"i": i}


@needs_node
async def test_node_init_error_header_is_ascii(recorder: Any, workers: Any,
                                               recorder_env: Any) -> None:
    proc = await start_node(workers, recorder_env, "unicode_init.handler")
    out = await recorder.wait_init_error()
    assert out.headers["Lambda-Runtime-Function-Error-Type"] == "Fehler?"
    assert out.json["errorType"] == "FehlerÜ"
    assert out.json["errorMessage"] == "kaputt"
    assert await workers.exit_code(proc) == 1
