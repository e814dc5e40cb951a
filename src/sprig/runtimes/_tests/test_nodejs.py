"""The Node.js bootstrap against a Runtime API server: every handler kind and init error."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from sprig.runtimes import nodejs

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nodejs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed on this machine")


async def start(workers: Any, make_env: Any, handler: str, root: Path, **extra: str) -> Any:
    assert NODE is not None
    env = make_env(handler, root, NODE_PATH=nodejs.node_path(root), **extra)
    return await workers.start(nodejs.launch_argv(NODE), env, cwd=root)


def test_argv_and_node_path() -> None:
    assert nodejs.bootstrap_path().is_file()
    assert nodejs.launch_argv("node") == ["node", str(nodejs.bootstrap_path())]
    parts = nodejs.node_path(Path("/code")).split(":")
    assert parts[:2] == ["/code", "/code/node_modules"]
    shims = nodejs.shims_dir()
    assert parts[2:] == ([str(shims)] if shims else [])
    assert nodejs.runtime_paths() == ((nodejs.bootstrap_path().parent,) if shims is None
                                      else (nodejs.bootstrap_path().parent, shims))


async def test_cjs_async_handler_sees_event_and_context(rapi: Any, workers: Any,
                                                        make_env: Any) -> None:
    root = FIXTURES / "cjs"
    await start(workers, make_env, "index.handler", root)
    before = time.time()
    out = await rapi.invoke({"a": 1}, client_context={"custom": {"subject": "t/1"},
                                                      "env": {"k": "v"},
                                                      "client": {"installation_id": "i"}})
    assert out.kind == "response", out.body
    doc = out.json
    assert doc["echo"] == {"a": 1}
    assert doc["greeting"] == "hello node"
    assert doc["functionName"] == "sample"
    assert doc["functionVersion"] == "$LATEST"
    assert doc["memoryLimitInMB"] == "128"
    assert doc["logGroupName"] == "/aws/lambda/sample"
    assert doc["logStreamName"] == "2026/11/27/[$LATEST]sprig"
    assert doc["invokedFunctionArn"].endswith(":function:sample:$LATEST")
    assert doc["clientContext"]["custom"] == {"subject": "t/1"}
    assert doc["clientContext"]["env"] == {"k": "v"}
    assert doc["clientContext"]["client"]["installation_id"] == "i"
    assert 0 < doc["remaining"] <= 60_000 - int((time.time() - before) * 1000) + 1000
    assert doc["waits"] is True
    assert doc["isBuffer"] is False
    assert out.content_type == "application/json"
    # The same worker serves the next invocation (keep-alive loop).
    again = await rapi.invoke([1, 2, 3])
    assert again.json["echo"] == [1, 2, 3]
    assert again.json["requestId"] != doc["requestId"]


@pytest.mark.parametrize(("handler", "expected"), [
    ("index.nested.deeper.handler", {"nested": {"x": 1}}),
    ("src/app.handler", {"nestedDir": True, "event": {"x": 1}}),
    ("lib/tool.handler", "from a directory"),
    ("greeter.greet", None),    # a package from node_modules (sync: its result is ignored)
])
async def test_nested_handler_path_and_nested_directory(rapi: Any, workers: Any, make_env: Any,
                                                        handler: str, expected: Any) -> None:
    await start(workers, make_env, handler, FIXTURES / "cjs")
    assert (await rapi.invoke({"x": 1})).json == expected


async def test_callback_style_handlers(rapi: Any, workers: Any, make_env: Any) -> None:
    root = FIXTURES / "cjs"
    await start(workers, make_env, "callback.handler", root)
    assert (await rapi.invoke({"value": "v"})).json == {"calls": 1, "value": "v"}
    failed = await rapi.invoke({"fail": "x"})
    assert failed.kind == "error"
    assert failed.json["errorType"] == "TypeError"
    assert failed.json["errorMessage"] == "bad input x"
    assert failed.json["stackTrace"][0] == "TypeError: bad input x"
    # Module state survives between invocations of one worker.
    assert (await rapi.invoke({"value": "w"})).json == {"calls": 3, "value": "w"}


@pytest.mark.parametrize(("handler", "timer_ran"), [("callback.waits", True),
                                                    ("callback.noWait", False)])
async def test_callback_waits_for_empty_event_loop(rapi: Any, workers: Any, make_env: Any,
                                                   handler: str, timer_ran: bool) -> None:
    await start(workers, make_env, handler, FIXTURES / "cjs")
    assert (await rapi.invoke({})).json == {"timerRan": timer_ran}


@pytest.mark.parametrize(("handler", "kind", "expected"), [
    ("callback.succeed", "response", {"via": "succeed"}),
    ("callback.done", "response", {"via": "done"}),
    ("callback.sync", "response", None),
    ("callback.fail", "error", {"errorType": "RangeError", "errorMessage": "via fail"}),
    ("callback.throws", "error", {"errorType": "Error", "errorMessage": "thrown synchronously"}),
])
async def test_context_completion_api(rapi: Any, workers: Any, make_env: Any, handler: str,
                                      kind: str, expected: Any) -> None:
    await start(workers, make_env, handler, FIXTURES / "cjs")
    out = await rapi.invoke({})
    assert out.kind == kind
    if kind == "error":
        assert {k: out.json[k] for k in expected} == expected
        assert isinstance(out.json["stackTrace"], list)
    else:
        assert out.json == expected


async def test_esm_mjs(rapi: Any, workers: Any, make_env: Any) -> None:
    await start(workers, make_env, "index.handler", FIXTURES / "esm")
    out = await rapi.invoke({"m": 1})
    assert out.json["esm"] is True
    assert out.json["event"] == {"m": 1}


@pytest.mark.parametrize(("handler", "expected"), [
    ("index.handler", {"typeModule": True, "joined": "a/b", "event": 7}),
    ("legacy.handler", {"cjs": True, "event": 7}),
])
async def test_type_module_js_and_cjs(rapi: Any, workers: Any, make_env: Any, handler: str,
                                      expected: Any) -> None:
    await start(workers, make_env, handler, FIXTURES / "esm-type-module")
    assert (await rapi.invoke(7)).json == expected


async def test_binary_encoding_and_buffer_result(rapi: Any, workers: Any, make_env: Any) -> None:
    root = FIXTURES / "cjs"
    await start(workers, make_env, "binary.handler", root,
                AWS_GREENGRASS_LAMBDA_ENCODING_TYPE="binary")
    # Binary encoding wins even when the server says JSON.
    out = await rapi.invoke(b"\x01\x02\x03", content_type="application/json")
    assert out.kind == "response", out.body
    assert out.body == b"\xff\x00\x03\x02\x01"
    assert out.content_type == "application/octet-stream"


async def test_non_json_content_type_gives_a_buffer(rapi: Any, workers: Any,
                                                    make_env: Any) -> None:
    await start(workers, make_env, "binary.handler", FIXTURES / "cjs")
    out = await rapi.invoke(b"ab", content_type="application/octet-stream")
    assert out.body == b"\xff\x00ba"


async def test_handled_errors(rapi: Any, workers: Any, make_env: Any) -> None:
    await start(workers, make_env, "errors.handler", FIXTURES / "cjs")
    out = await rapi.invoke({"x": 5})
    assert out.kind == "error"
    assert out.json["errorType"] == "ValidationFailed"
    assert out.json["errorMessage"] == "field x is 5"
    assert any("errors.js" in line for line in out.json["stackTrace"])
    thrown = await rapi.invoke({"kind": "string"})
    assert thrown.json == {"errorType": "string", "errorMessage": "just a string",
                           "stackTrace": []}


async def test_unhandled_rejection_fails_the_invocation_and_exits(rapi: Any, workers: Any,
                                                                  make_env: Any) -> None:
    proc = await start(workers, make_env, "errors.rejection", FIXTURES / "cjs")
    out = await rapi.invoke({})
    assert out.kind == "error"
    assert out.json["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert "nobody catches me" in out.json["errorMessage"]
    assert await workers.exit_code(proc) == 128


async def test_invalid_json_is_an_unmarshal_error(rapi: Any, workers: Any,
                                                  make_env: Any) -> None:
    await start(workers, make_env, "index.handler", FIXTURES / "cjs")
    out = await rapi.invoke(b"{not json")
    assert out.kind == "error"
    assert out.json["errorType"] == "Runtime.UnmarshalError"


@pytest.mark.parametrize(("handler", "error_type", "message"), [
    ("nope.handler", "Runtime.ImportModuleError", "nope"),
    ("broken_require.handler", "Runtime.ImportModuleError", "no-such-package-anywhere"),
    ("index.missing", "Runtime.HandlerNotFound", "index.missing is undefined or not exported"),
    ("index.notAFunction", "Runtime.HandlerNotFound", "is not a function"),
    ("index", "Runtime.MalformedHandlerName", "index"),
    ("../cjs/index.handler", "Runtime.MalformedHandlerName", "'..'"),
    ("syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError"),
])
async def test_init_errors(rapi: Any, workers: Any, make_env: Any, handler: str,
                           error_type: str, message: str) -> None:
    proc = await start(workers, make_env, handler, FIXTURES / "cjs")
    out = await rapi.wait_init_error()
    assert out.json["errorType"] == error_type
    assert message in out.json["errorMessage"]
    assert isinstance(out.json["stackTrace"], list)
    assert await workers.exit_code(proc) == 1


async def test_esm_can_import_packages_from_node_path(rapi: Any, workers: Any,
                                                      make_env: Any) -> None:
    """ES modules ignore NODE_PATH; the bootstrap's resolve hook makes the shims importable."""
    assert NODE is not None
    root = FIXTURES / "esm"
    node_path = f"{nodejs.node_path(root)}:{FIXTURES / 'cjs' / 'node_modules'}"
    env = make_env("shimmed.handler", root, NODE_PATH=node_path)
    await workers.start(nodejs.launch_argv(NODE), env, cwd=root)
    out = await rapi.invoke({})
    assert out.kind == "response", out.body
    assert out.json == {"named": "hello esm", "default": "hello default"}


@pytest.mark.parametrize(("handler", "expected"), [
    ("pinned.handler", None),
    ("pinned.callback", {"timerRan": True}),
    ("pinned.later", {"later": True}),
])
async def test_long_lived_function_with_a_busy_event_loop(rapi: Any, workers: Any,
                                                          make_env: Any, handler: str,
                                                          expected: Any) -> None:
    """A function whose init keeps the event loop busy forever still completes its invocations:
    waiting for the "empty" event loop waits for the work the invocation itself started."""
    await start(workers, make_env, handler, FIXTURES / "cjs")
    for _ in range(2):
        out = await rapi.invoke({"n": 1}, wait_s=10)
        assert out.kind == "response", out.body
        assert out.json == expected
