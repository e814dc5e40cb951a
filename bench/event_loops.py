"""Event accept loops, each run in a fresh subprocess: ``python -m bench.event_loops KIND JSON``.

What is measured is the *accept* path of an ``Event`` invocation: request in, 202 out (stored
first when durable), not the function's run. ``KIND`` is ``raw`` (SigV4-signed HTTP on kept-alive
connections, the invoke API without boto3's pipeline) or ``management`` (the management socket,
what ``sprig invoke --invocation-type Event`` sends). ``clients`` threads share ``count`` events;
prints one JSON line: ``{"samples_us": [...], "elapsed_s": s, "throttled": n}`` (a 429 is counted,
not retried, so a run that throttles cannot look fast).
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.loops import _endpoint, _keys, _UnixHTTP

Accept = Callable[[bytes], bool]        # True: 202; False: throttled (429)
PAYLOAD = b'{"event": "bench", "pad": "' + b"p" * 200 + b'"}'


def raw_event_client(root: str, function: str) -> Accept:
    from urllib.parse import urlsplit

    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    keys = _keys(root)
    signer = SigV4Auth(Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"]),
                       "lambda", "us-east-1")
    url = _endpoint(root)
    parts = urlsplit(url)
    path = f"/2015-03-31/functions/{function}/invocations"
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)

    def accept(payload: bytes) -> bool:
        req = AWSRequest("POST", url + path, data=payload,
                         headers={"X-Amz-Invocation-Type": "Event"})
        signer.add_auth(req)
        conn.request("POST", path, payload, dict(req.headers.items()))
        resp = conn.getresponse()
        data = resp.read()
        if resp.status == 429:
            return False
        if resp.status != 202:
            raise RuntimeError(f"event not accepted: {resp.status} {data[:300]!r}")
        return True
    return accept


def management_event_client(root: str, function: str) -> Accept:
    conn = _UnixHTTP(str(Path(root) / "run" / "sprig.sock"))

    def accept(payload: bytes) -> bool:
        body = json.dumps({"method": "invoke", "params": {
            "function": function, "invocationType": "Event",
            "payload": base64.b64encode(payload).decode()}})
        conn.request("POST", "/rpc", body, {"Content-Type": "application/json"})
        doc = json.loads(conn.getresponse().read())
        if "error" in doc:
            if doc["error"].get("type") == "QueueFull":
                return False
            raise RuntimeError(f"event not accepted: {str(doc)[:500]}")
        return True
    return accept


def run(make: Callable[[], Accept], clients: int, count: int) -> dict[str, Any]:
    accepts = [make() for _ in range(clients)]
    lock = threading.Lock()
    left = [count]
    samples: list[float] = []
    throttled = [0]
    errors: list[BaseException] = []

    def client(accept: Accept) -> None:
        mine: list[float] = []
        refused = 0
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        break
                    left[0] -= 1
                t0 = time.perf_counter()
                if accept(PAYLOAD):
                    mine.append((time.perf_counter() - t0) * 1e6)
                else:
                    refused += 1
        except BaseException as e:  # reported below: a failed run must not look fast
            errors.append(e)
        with lock:
            samples.extend(mine)
            throttled[0] += refused

    threads = [threading.Thread(target=client, args=(a,)) for a in accepts]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]!r}")
    return {"samples_us": samples, "elapsed_s": elapsed, "throttled": throttled[0]}


def main(argv: list[str]) -> int:
    kind, args = argv[0], json.loads(argv[1])
    makers: dict[str, Callable[[], Accept]] = {
        "raw": lambda: raw_event_client(args["root"], args["function"]),
        "management": lambda: management_event_client(args["root"], args["function"]),
    }
    result = run(makers[kind], int(args.get("clients", 1)), int(args["count"]))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
