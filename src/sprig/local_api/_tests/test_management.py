"""The management API driven by the CLI's own client (http.client over the Unix socket)."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sprig.cli.client import CoreNotRunning, ManagementApiError, ManagementClient
from sprig.errors import SprigError
from sprig.local_api.management import ManagementServer
from sprig.paths import RootLayout


class Methods:
    def __init__(self) -> None:
        self.stream_closed = asyncio.Event()

    async def echo(self, params: dict[str, Any]) -> Any:
        return {"params": params, "path": Path("/p")}       # non-JSON values become strings

    async def refuse(self, params: dict[str, Any]) -> Any:
        raise SprigError("no such deployment: d-1")

    async def bug(self, params: dict[str, Any]) -> Any:
        raise KeyError("oops")

    async def count(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        try:
            for i in range(int(params["n"])):
                yield {"i": i}
            if params.get("fail"):
                raise SprigError("deployment d-1 failed")
        finally:
            self.stream_closed.set()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ManagementServer, ManagementClient, Methods]]:
    layout = RootLayout(tmp_path)
    layout.management_socket.parent.mkdir(parents=True, exist_ok=True)
    server = ManagementServer(layout.management_socket)
    methods = Methods()
    server.method("echo", methods.echo)
    server.method("refuse", methods.refuse)
    server.method("bug", methods.bug)
    server.stream("count", methods.count)
    await server.start()
    try:
        yield server, ManagementClient(tmp_path, timeout_s=10), methods
    finally:
        await server.aclose()


async def test_rpc_result_and_errors(
        api: tuple[ManagementServer, ManagementClient, Methods]) -> None:
    server, client, _ = api
    assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o600
    assert await asyncio.to_thread(client.call, "echo", {"a": 1}) == {
        "params": {"a": 1}, "path": "/p"}
    with pytest.raises(ManagementApiError) as info:
        await asyncio.to_thread(client.call, "refuse")
    assert info.value.kind == "SprigError" and "d-1" in str(info.value)
    with pytest.raises(ManagementApiError) as info:
        await asyncio.to_thread(client.call, "nope")
    assert "unknown method 'nope'" in str(info.value) and "bug, echo, refuse" in str(info.value)
    with pytest.raises(ManagementApiError) as info:
        await asyncio.to_thread(client.call, "bug")
    assert info.value.kind == "InternalError" and "KeyError" in str(info.value)


async def test_stream_lines_and_error_line(
        api: tuple[ManagementServer, ManagementClient, Methods]) -> None:
    _, client, methods = api
    items = await asyncio.to_thread(lambda: list(client.stream("count", {"n": 3})))
    assert items == [{"i": 0}, {"i": 1}, {"i": 2}]
    await asyncio.wait_for(methods.stream_closed.wait(), 10)

    def failing() -> list[Any]:
        got: list[Any] = []
        with pytest.raises(ManagementApiError) as info:
            for item in client.stream("count", {"n": 2, "fail": True}):
                got.append(item)
        assert "d-1 failed" in str(info.value)
        return got

    assert await asyncio.to_thread(failing) == [{"i": 0}, {"i": 1}]
    with pytest.raises(ManagementApiError) as info:
        await asyncio.to_thread(lambda: list(client.stream("other")))
    assert "unknown stream 'other'" in str(info.value)


async def test_bad_body_is_a_400_naming_the_shape(
        api: tuple[ManagementServer, ManagementClient, Methods]) -> None:
    _, client, _ = api

    def post(body: bytes) -> tuple[int, bytes]:
        conn = client._connect()
        try:
            conn.request("POST", "/rpc", body)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    status, body = await asyncio.to_thread(post, b"not json")
    assert status == 400 and b"not JSON" in body
    status, body = await asyncio.to_thread(post, b'{"params": {}}')
    assert status == 400 and b'{\\"method\\": str' in body


async def test_after_close_the_client_says_no_core_runs(
        api: tuple[ManagementServer, ManagementClient, Methods]) -> None:
    server, client, _ = api
    await server.aclose()
    with pytest.raises(CoreNotRunning):
        await asyncio.to_thread(client.call, "echo")
