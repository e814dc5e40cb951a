"""Measurement loops, each run in a fresh subprocess: ``python -m bench.loops KIND JSON``.

Why subprocesses: every client (the floor, python-lambda-local, the management socket, boto3,
a raw signed HTTP client) starts from the same clean interpreter, so none pays for another's
garbage or imports. Each prints one JSON line: ``{"samples_us": [...], "elapsed_s": s}``
(latency of each measured round trip after ``warmup`` unmeasured ones).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Roundtrip = Callable[[bytes], bytes]


def payload_of(size: int) -> bytes:
    """A JSON object of about ``size`` bytes (the echo handler returns it unchanged)."""
    if size <= 32:
        return b'{"name": "bench"}'
    return json.dumps({"data": "x" * (size - 12)}).encode()


def measure(call: Roundtrip, payload: bytes, count: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        call(payload)
    samples: list[float] = []
    clock = time.perf_counter
    cpu0 = time.process_time()
    started = clock()
    for _ in range(count):
        t0 = clock()
        out = call(payload)
        samples.append((clock() - t0) * 1e6)
    elapsed = clock() - started
    cpu = time.process_time() - cpu0
    if json.loads(out) != json.loads(payload):
        raise AssertionError(f"echo mismatch: {out[:200]!r}")
    return {"samples_us": samples, "elapsed_s": elapsed, "cpu_s": cpu}


# -- the floor: two processes, JSON over a Unix socket ----------------------------------------

def _recv_line(sock: socket.socket, buf: bytearray) -> bytes:
    while True:
        end = buf.find(b"\n")
        if end >= 0:
            line = bytes(buf[:end])
            del buf[:end + 1]
            return line
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk


def floor_server(path: str, handler_dir: str) -> None:
    """Echo JSON lines through the same handler; print "ready" once listening."""
    sys.path.insert(0, handler_dir)
    from app import handler  # type: ignore[import-not-found]

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    buf = bytearray()
    try:
        while True:
            line = _recv_line(conn, buf)
            conn.sendall(json.dumps(handler(json.loads(line), None)).encode() + b"\n")
    except (EOFError, ConnectionError):
        pass


def floor_client(path: str) -> Roundtrip:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    buf = bytearray()

    def call(payload: bytes) -> bytes:
        sock.sendall(json.dumps(json.loads(payload)).encode() + b"\n")
        return json.dumps(json.loads(_recv_line(sock, buf))).encode()
    return call


# -- python-lambda-local ----------------------------------------------------------------------

def lambda_local_client(handler_dir: str) -> Roundtrip:
    import logging

    from lambda_local.context import Context  # type: ignore[import-untyped]
    from lambda_local.main import call as ll_call  # type: ignore[import-untyped]

    logging.disable(logging.CRITICAL)
    sys.path.insert(0, handler_dir)
    from app import handler

    def call(payload: bytes) -> bytes:
        result, err = ll_call(handler, json.loads(payload), Context(3))
        if err:
            raise RuntimeError(f"lambda-local: {err}: {result}")
        return json.dumps(result).encode()
    return call


# -- Sprig: the management socket, boto3, raw signed HTTP --------------------------------------

class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def management_client(root: str, function: str) -> Roundtrip:
    """The management API's ``invoke`` method on one kept-alive connection (what ``sprig
    invoke`` sends, without the CLI's process start)."""
    conn = _UnixHTTP(str(Path(root) / "run" / "sprig.sock"))

    def call(payload: bytes) -> bytes:
        body = json.dumps({"method": "invoke", "params": {
            "function": function, "payload": base64.b64encode(payload).decode()}})
        conn.request("POST", "/rpc", body, {"Content-Type": "application/json"})
        doc = json.loads(conn.getresponse().read())
        if "error" in doc or doc["result"].get("functionError"):
            raise RuntimeError(f"invoke failed: {str(doc)[:500]}")
        return base64.b64decode(doc["result"]["payload"])
    return call


def _keys(root: str) -> dict[str, str]:
    text = (Path(root) / "credentials").read_text()
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)


def _endpoint(root: str) -> str:
    url: str = json.loads((Path(root) / "run" / "endpoints.json").read_text())["lambda"]
    return url


def boto3_client(root: str, function: str) -> Roundtrip:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    keys = _keys(root)
    client = boto3.client(
        "lambda", endpoint_url=_endpoint(root), region_name="us-east-1",
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=keys["aws_secret_access_key"],
        config=Config(retries={"total_max_attempts": 1}))

    def call(payload: bytes) -> bytes:
        resp = client.invoke(FunctionName=function, Payload=payload)
        if resp.get("FunctionError"):
            raise RuntimeError(f"invoke failed: {resp}")
        data: bytes = resp["Payload"].read()
        return data
    return call


def raw_client(root: str, function: str) -> Roundtrip:
    """SigV4-signed POSTs with botocore's signer on one kept-alive http.client connection:
    the invoke API's cost without boto3's request pipeline."""
    from urllib.parse import urlsplit

    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    keys = _keys(root)
    creds = Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"])
    signer = SigV4Auth(creds, "lambda", "us-east-1")
    url = _endpoint(root)
    parts = urlsplit(url)
    path = f"/2015-03-31/functions/{function}/invocations"
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)

    def call(payload: bytes) -> bytes:
        req = AWSRequest("POST", url + path, data=payload)
        signer.add_auth(req)
        conn.request("POST", path, payload, dict(req.headers.items()))
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or resp.getheader("X-Amz-Function-Error"):
            raise RuntimeError(f"invoke failed: {resp.status} {data[:300]!r}")
        return data
    return call


def concurrent(make: Callable[[], Roundtrip], payload: bytes, clients: int,
               count: int) -> dict[str, Any]:
    """``clients`` threads, each with its own connection, share ``count`` invocations."""
    calls = [make() for _ in range(clients)]
    for c in calls:
        c(payload)
    lock = threading.Lock()
    left = [count]
    samples: list[float] = []
    errors: list[BaseException] = []

    def run(call: Roundtrip) -> None:
        mine: list[float] = []
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        break
                    left[0] -= 1
                t0 = time.perf_counter()
                call(payload)
                mine.append((time.perf_counter() - t0) * 1e6)
        except BaseException as e:  # reported below: a failed run must not look fast
            errors.append(e)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]!r}")
    return {"samples_us": samples, "elapsed_s": elapsed}


def main(argv: list[str]) -> int:
    kind, args = argv[0], json.loads(argv[1])
    if kind == "floor-server":
        floor_server(args["path"], args["handler_dir"])
        return 0
    makers: dict[str, Callable[[], Roundtrip]] = {
        "floor": lambda: floor_client(args["path"]),
        "lambda-local": lambda: lambda_local_client(args["handler_dir"]),
        "management": lambda: management_client(args["root"], args["function"]),
        "boto3": lambda: boto3_client(args["root"], args["function"]),
        "raw": lambda: raw_client(args["root"], args["function"]),
    }
    make = makers[kind]
    if args.get("sleep_ms"):
        payload = json.dumps({"sleep_ms": args["sleep_ms"]}).encode()
    else:
        payload = payload_of(int(args.get("size", 0)))
    if args.get("clients"):
        result = concurrent(make, payload, int(args["clients"]), int(args["count"]))
    else:
        result = measure(make(), payload, int(args["count"]), int(args.get("warmup", 20)))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
