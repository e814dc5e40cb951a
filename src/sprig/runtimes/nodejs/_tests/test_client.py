"""The Node bootstrap's own HTTP/1.1 client (runtime_api_client.js).

The parser is fed real bytes in node, whole and one byte at a time. The bootstrap is then run
against a raw Runtime API that frames its answers every way HTTP/1.1 allows (chunked,
close-delimited, ``Connection: close`` behind a pipelined request), and against Sprig's own
server with large and oversize payloads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sprig.runtime_api import Job, OutcomeKind, RuntimeSession, wire
from sprig.runtimes import nodejs

NODE = shutil.which("node")
HERE = Path(__file__).resolve().parent
CLIENT = HERE.parent / "runtime_api_client.js"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:sample:$LATEST"
WAIT_S = 30.0

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed on this machine")


# ---- the parser ---------------------------------------------------------------------------

def parse(*cases: tuple[bytes, bool]) -> list[list[dict[str, Any]]]:
    """Feed each (data, end) whole and byte by byte; both must give the same; return those."""
    assert NODE is not None
    doc = [{"data": base64.b64encode(data).decode(), "split": split, "end": end}
           for data, end in cases for split in ("whole", "bytes")]
    proc = subprocess.run([NODE, str(HERE / "parse_driver.js"), str(CLIENT)],
                          input=json.dumps(doc), capture_output=True, text=True, timeout=30,
                          check=True)
    results: list[list[dict[str, Any]]] = json.loads(proc.stdout)
    whole, one_by_one = results[0::2], results[1::2]
    for w, b in zip(whole, one_by_one, strict=True):
        if w and "error" in w[-1]:
            assert b and "error" in b[-1]         # both fail (possibly at another byte)
        else:
            assert w == b
    for result in whole:
        for res in result:
            if "body" in res:
                res["body"] = base64.b64decode(res["body"])
    return whole


def test_content_length_chunked_and_pipelined_responses() -> None:
    fixed, chunked, two = parse(
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
         b"Lambda-Runtime-Aws-Request-Id: abc\r\n\r\n{\"a\":1}", False),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
         b"A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n", False),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n"
         b'{"status":"OK"}HTTP/1.1 204 No Content\r\n\r\n'
         b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    )
    assert fixed == [{"status": 200, "body": b'{"a":1}', "headers": {
        "content-type": "application/json", "content-length": "7",
        "lambda-runtime-aws-request-id": "abc"}}]
    assert [(r["status"], r["body"]) for r in chunked] == [(200, b"hello0123456789")]
    assert [(r["status"], r["body"]) for r in two] == [(202, b'{"status":"OK"}'), (204, b""),
                                                       (200, b"")]


def test_close_delimited_and_cut_off_bodies() -> None:
    delimited, cut = parse(
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", True),
    )
    assert [r.get("body") for r in delimited] == [b"until the end", None]
    assert delimited[-1] == {"ended": True}
    assert cut == [{"ended": False}]


def test_header_repeats_case_and_utf8() -> None:
    context = json.dumps({"custom": {"name": "Zoë"}}, ensure_ascii=False)
    (res,) = parse(
        (b"HTTP/1.0 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Type: a\r\nContent-Type: b\r\n"
         b"Lambda-Runtime-Client-Context: " + context.encode() + b"\r\n"
         b"Content-Length: 0\r\n\r\n", False),
    )[0]
    assert res["headers"]["x-a"] == "1, 2"
    assert res["headers"]["content-type"] == "a"
    assert json.loads(res["headers"]["lambda-runtime-client-context"]) == {
        "custom": {"name": "Zoë"}}


@pytest.mark.parametrize("data", [
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
])
def test_malformed_responses_are_protocol_errors(data: bytes) -> None:
    (result,) = parse((data, False))
    assert result[-1]["error"] == "ProtocolError", result


# ---- the bootstrap against servers ---------------------------------------------------------

@dataclass
class RawJob:
    """One invocation and how the raw server frames it."""

    payload: bytes
    framing: str = "length"            # "length", "chunked" or "close" (close-delimited)
    close_after_answer: bool = False   # answer the worker's POST with "Connection: close"
    request_id: str = field(default_factory=lambda: os.urandom(8).hex())


class RawRuntimeApi:
    """A Runtime API on asyncio streams that frames /next answers as each job says."""

    def __init__(self) -> None:
        self.jobs: asyncio.Queue[RawJob] = asyncio.Queue()
        self.answers: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.address = ""
        self._current = RawJob(b"")

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                method, path, _ = head.split("\r\n")[0].split(" ")
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in head.split("\r\n")[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET":
                    job = await self.jobs.get()
                    self._current = job
                    h = (f"Content-Type: application/json\r\n"
                         f"Lambda-Runtime-Aws-Request-Id: {job.request_id}\r\n"
                         f"Lambda-Runtime-Deadline-Ms: 9999999999999\r\n"
                         f"Lambda-Runtime-Invoked-Function-Arn: {ARN}\r\n")
                    if job.framing == "chunked":
                        half = len(job.payload) // 2
                        writer.write(f"HTTP/1.1 200 OK\r\n{h}Transfer-Encoding: chunked\r\n\r\n"
                                     .encode())
                        for part in (job.payload[:half], job.payload[half:]):
                            writer.write(b"%x;x=y\r\n%b\r\n" % (len(part), part))
                            await writer.drain()
                        writer.write(b"0\r\nX-Done: 1\r\n\r\n")
                    elif job.framing == "close":
                        writer.write(f"HTTP/1.1 200 OK\r\n{h}Connection: close\r\n\r\n".encode()
                                     + job.payload)
                        await writer.drain()
                        writer.close()
                        return
                    else:
                        writer.write(f"HTTP/1.1 200 OK\r\n{h}Content-Length: "
                                     f"{len(job.payload)}\r\n\r\n".encode() + job.payload)
                    await writer.drain()
                else:
                    assert path.endswith(f"/invocation/{self._current.request_id}/response"), path
                    close = self._current.close_after_answer
                    writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n"
                                 + (b"Connection: close\r\n" if close else b"")
                                 + b'\r\n{"status":"OK"}')
                    await writer.drain()
                    await self.answers.put((path, body))
                    if close:   # whatever was pipelined behind the POST is never handled
                        writer.close()
                        return

    async def invoke(self, job: RawJob) -> bytes:
        await self.jobs.put(job)
        path, body = await asyncio.wait_for(self.answers.get(), WAIT_S)
        assert job.request_id in path
        return body

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def echo(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.js").write_text("exports.handler = async (event) => event;\n")
    return code


@pytest.fixture
async def workers() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def start_node(procs: list[asyncio.subprocess.Process], code: Path,
                     **env: str) -> asyncio.subprocess.Process:
    assert NODE is not None
    full = {"PATH": os.environ["PATH"], "_HANDLER": "index.handler",
            "LAMBDA_TASK_ROOT": str(code), "AWS_LAMBDA_FUNCTION_NAME": "sample", **env}
    proc = await asyncio.create_subprocess_exec(*nodejs.launch_argv(NODE), env=full,
                                                cwd=str(code))
    procs.append(proc)
    return proc


async def test_every_framing_and_reconnects(echo: Path,
                                            workers: list[asyncio.subprocess.Process]) -> None:
    api = RawRuntimeApi()
    await api.start()
    try:
        await start_node(workers, echo, AWS_LAMBDA_RUNTIME_API=api.address)
        big = json.dumps({"k": "v" * 200_000}).encode()
        jobs = [RawJob(b'{"n": 1}', "chunked"), RawJob(big, "chunked"),
                RawJob(b'{"n": 3}', "close"),                  # the worker must reconnect
                RawJob(b'{"n": 4}', close_after_answer=True),  # its pipelined /next resent
                RawJob(b'{"n": 5}'), RawJob(big, "close")]
        for job in jobs:
            assert json.loads(await api.invoke(job)) == json.loads(job.payload)
        assert api.connections == 4
    finally:
        await api.close()


async def test_large_and_oversize_responses_over_the_unix_socket(
        echo: Path, tmp_path: Path, workers: list[asyncio.subprocess.Process]) -> None:
    session = await RuntimeSession.open(log=lambda line: None,
                                        unix_path=str(tmp_path / "rapi.sock"))
    try:
        assert session.unix_path is not None
        await start_node(workers, echo, AWS_LAMBDA_RUNTIME_API=session.address,
                         SPRIG_RUNTIME_API_SOCKET=session.unix_path)
        await session.wait_ready(WAIT_S)

        async def run(payload: bytes) -> Any:
            job = Job.for_payload(payload, function_arn=ARN, timeout_s=WAIT_S)
            return await asyncio.wait_for(session.run(job), WAIT_S)

        big = json.dumps({"k": "é" * 1_500_000}).encode()            # 3 MB each way
        out = await run(big)
        assert out.kind is OutcomeKind.RESPONSE
        assert json.loads(out.body) == json.loads(big)
        over = json.dumps("x" * wire.MAX_RESPONSE_BYTES).encode()   # the echo is too large
        out = await run(over)
        assert out.kind is OutcomeKind.TOO_LARGE
        assert out.error_type == wire.FN_RESPONSE_TOO_LARGE
        out = await run(b'{"after": true}')           # the worker carries on after the 413
        assert json.loads(out.body) == {"after": True}
    finally:
        await session.aclose()


async def test_an_error_that_cannot_be_read_still_answers(
        tmp_path: Path, workers: list[asyncio.subprocess.Process]) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.js").write_text(
        "exports.handler = async () => {\n"
        "  throw new Proxy(new Error('x'), { get() { throw new Error('no reading me'); } });\n"
        "};\n")
    session = await RuntimeSession.open(log=lambda line: None)
    try:
        await start_node(workers, code, AWS_LAMBDA_RUNTIME_API=session.address)
        await session.wait_ready(WAIT_S)
        for _ in range(2):                                # and the worker carries on
            job = Job.for_payload(b"{}", function_arn=ARN, timeout_s=WAIT_S)
            out = await asyncio.wait_for(session.run(job), WAIT_S)
            assert out.kind is OutcomeKind.ERROR
            assert out.error_type == "Runtime.SerializationError"
            assert json.loads(out.body)["errorMessage"] == "Unable to serialize the error"
    finally:
        await session.aclose()
