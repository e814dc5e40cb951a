"""The Runtime API's two lanes for Sprig's Python runtime, by turns in one process:
``python -m bench.lanes measure JSON`` (``{"handler_dir", "count", "rounds"}``).

One :class:`~sprig.runtime_api.RuntimeSession` per lane, each serving the real bootstrap on
its Unix socket (HTTP; or the framed lane, ``SPRIG_RUNTIME_API_FRAMES=1``), the same echo
handler. Batches of invocations alternate between the lanes; per lane it prints the p50 round
trip and this process's CPU per invocation (the session's side: what the core pays), as one
JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sprig.runtime_api import Job, RuntimeSession, wire
from sprig.runtimes.python import bootstrap_path

ARN = "arn:aws:lambda:us-east-1:123456789012:function:Echo:1"


async def _start(lane: str, sock: str, handler_dir: str,
                 ) -> tuple[RuntimeSession, asyncio.subprocess.Process]:
    session = await RuntimeSession.open(log=lambda _m: None, unix_path=sock)
    env = {"PATH": os.environ.get("PATH", ""), "AWS_LAMBDA_RUNTIME_API": session.address,
           "LAMBDA_TASK_ROOT": handler_dir, "_HANDLER": "app.handler",
           wire.ENV_UNIX_SOCKET: sock}
    if lane == "frames":
        env[wire.ENV_FRAMES] = "1"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-u", str(bootstrap_path()),
                                                env=env)
    await session.wait_ready(timeout=30)
    return session, proc


async def measure(handler_dir: str, count: int, rounds: int) -> dict[str, Any]:
    payload = b'{"name": "bench"}'
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sprig-lanes-") as tmp:
        lanes = {lane: await _start(lane, str(Path(tmp) / f"{lane}.sock"), handler_dir)
                 for lane in ("http", "frames")}
        samples: dict[str, list[float]] = {lane: [] for lane in lanes}
        cpu: dict[str, float] = dict.fromkeys(lanes, 0.0)
        try:
            for _ in range(rounds):
                for lane, (session, _proc) in lanes.items():
                    for i in range(count + 20):
                        job = Job.for_payload(payload, function_arn=ARN, timeout_s=30)
                        c0, t0 = time.process_time(), time.perf_counter()
                        outcome = await session.run(job)
                        t1, c1 = time.perf_counter(), time.process_time()
                        if not outcome.ok or json.loads(outcome.body) != json.loads(payload):
                            raise AssertionError(f"{lane}: {outcome}")
                        if i >= 20:                     # the first 20 warm the batch up
                            samples[lane].append((t1 - t0) * 1e6)
                            cpu[lane] += c1 - c0
        finally:
            for session, proc in lanes.values():
                proc.kill()
                await proc.wait()
                await session.aclose()
        for lane in lanes:
            out[lane] = {"p50_us": statistics.median(samples[lane]),
                         "cpu_us": cpu[lane] / len(samples[lane]) * 1e6}
    return out


def main() -> None:
    args = json.loads(sys.argv[-1])
    print(json.dumps(asyncio.run(measure(args["handler_dir"], int(args["count"]),
                                         int(args["rounds"])))))


if __name__ == "__main__":
    main()
