"""Greengrass V1-style Node.js functions on our bootstrap, publishing with the real, unmodified
``aws-greengrass-core-sdk`` through Sprig's shims (on NODE_PATH) and its V1 SDK IPC server."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sprig.functions.errors import FunctionNotFound
from sprig.functions.invocation import Invocation, InvocationResult
from sprig.runtimes import nodejs
from sprig.sdk_ipc.env import sdk_env
from sprig.sdk_ipc.server import SdkIpcServer

ROOT = Path(__file__).resolve().parent / "fixtures" / "nodejs" / "greengrass"
NODE_COMPAT = Path(__file__).resolve().parents[4] / ".compat" / "node" / "node_modules"
NODE = shutil.which("node")
ME = "arn:aws:lambda:us-east-1:123456789012:function:hello:1"
TOKEN = "tok-hello"

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed on this machine"),
    pytest.mark.skipif(not (NODE_COMPAT / "aws-greengrass-core-sdk").is_dir(),
                       reason="aws-greengrass-core-sdk is not installed in .compat/node "
                              "(run scripts/setup-compat)"),
    pytest.mark.skipif(nodejs.shims_dir() is None, reason="Sprig's Node.js shims are missing"),
]


class NoFunctions:
    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        raise FunctionNotFound(function)


class Cloud:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.changed = asyncio.Condition()

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        async with self.changed:
            self.sent.append((topic, payload))
            self.changed.notify_all()

    async def wait(self, n: int) -> list[tuple[str, bytes]]:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.sent) >= n), 10)
        return self.sent


@pytest.fixture
async def ipc() -> AsyncIterator[tuple[SdkIpcServer, Cloud]]:
    cloud = Cloud()
    server = SdkIpcServer(invoker=NoFunctions(), cloud=cloud)
    await server.start()
    server.register_function(ME, TOKEN, "com.example.Hello")
    server.set_subscriptions({"up": {"id": "up", "source": ME, "subject": "hello/#",
                                     "target": "cloud"}})
    try:
        yield server, cloud
    finally:
        await server.aclose()


async def start(workers: Any, make_env: Any, server: SdkIpcServer, handler: str) -> Any:
    assert NODE is not None
    # The function would bundle the SDK in its node_modules; here it comes from .compat.
    env = make_env(handler, ROOT, NODE_PATH=f"{nodejs.node_path(ROOT)}:{NODE_COMPAT}",
                   **sdk_env(ME, TOKEN, server.port))
    return await workers.start(nodejs.launch_argv(NODE), env, cwd=ROOT)


async def test_pinned_function_publishes_and_completes(rapi: Any, workers: Any, make_env: Any,
                                                       ipc: tuple[SdkIpcServer, Cloud]) -> None:
    server, cloud = ipc
    await start(workers, make_env, server, "hello.handler")
    for n in range(2):
        out = await rapi.invoke({"n": n}, wait_s=10)
        assert out.kind == "response", out.body
        assert out.json is None
    assert await cloud.wait(2) == [("hello/world", b'{"got":{"n":0}}'),
                                   ("hello/world", b'{"got":{"n":1}}')]


async def test_callback_after_publish(rapi: Any, workers: Any, make_env: Any,
                                      ipc: tuple[SdkIpcServer, Cloud]) -> None:
    server, cloud = ipc
    await start(workers, make_env, server, "hello.confirmed")
    out = await rapi.invoke({}, wait_s=10)
    assert out.json == {"published": "string"}
    assert cloud.sent == [("hello/confirmed", b"ok")]


async def test_esm_function_imports_the_sdk(rapi: Any, workers: Any, make_env: Any,
                                            ipc: tuple[SdkIpcServer, Cloud]) -> None:
    """ES modules ignore NODE_PATH: the bootstrap's resolve hook finds the SDK there."""
    server, cloud = ipc
    await start(workers, make_env, server, "hello_esm.handler")
    out = await rapi.invoke({"m": 1}, wait_s=10)
    assert out.kind == "response", out.body
    assert out.json == {"esm": True}
    assert cloud.sent == [("hello/esm", b'{"m":1}')]
