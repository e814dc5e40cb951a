"""Messaging: local bus fan-out, publish → function → publish, and an MQTT round trip through
the bridge, each against Mosquitto (or its command-line tools) measured in the same run.

Why Mosquitto as the baseline: it is the broker a user would otherwise put on the device; the
fan-out and round trips run the same counts, payloads and QoS 0 through it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness import PYTHON, REPO, run_module
from bench.plan import Plan
from bench.stats import Figure, Results, percentile
from sprig.testing import CoreProcess

ROUTER = "aws.greengrass.LegacySubscriptionRouter"

PUBLISHER = '''\
import json
import greengrasssdk

client = greengrasssdk.client("iot-data")


def handler(event, context):
    client.publish(topic="bench/out", payload=json.dumps(event))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def mosquitto(work: Path) -> Iterator[int]:
    """A loopback-only Mosquitto, anonymous, for the bridge and the baselines."""
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:       # "... mosquitto version X running" once listening
            if "running" in line:
                break
        else:
            raise RuntimeError("mosquitto did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def publisher_code(work: Path) -> Path:
    """The republishing handler with greengrasssdk vendored, as a V1 function ships it."""
    code = work / "py-publisher"
    code.mkdir(parents=True, exist_ok=True)
    (code / "app.py").write_text(PUBLISHER)
    spec = importlib.util.find_spec("greengrasssdk")
    if spec is None or spec.origin is None:
        raise RuntimeError("greengrasssdk is not installed in the benchmark's virtualenv")
    shutil.copytree(Path(spec.origin).parent, code / "greengrasssdk",
                    ignore=shutil.ignore_patterns("__pycache__", "stream_manager"),
                    dirs_exist_ok=True)
    return code


def deploy_publisher(core: CoreProcess, work: Path) -> None:
    from sprig.lambda_import.importer import import_function
    from sprig.lambda_import.params import ImportFlags

    out = work / "pfp"
    import_function(publisher_code(work), out, ImportFlags(
        name="Republish", runtime="python3.11", handler="app.handler", pinned=True,
        isolation="NoContainer", event_sources=("bench/in:PUB_SUB",)))
    # V1 publishes go where aws.greengrass.LegacySubscriptionRouter says: here, to the local
    # bus (a component: target that is not a function), where the benchmark subscribes.
    arn = "arn:aws:lambda:us-east-1:000000000000:function:Republish:1"
    router = {"subscriptions": {"bench-out": {
        "id": "bench-out", "source": arn, "subject": "bench/out",
        "target": "component:bench.Listener"}}}
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Republish": "1.0.0", ROUTER: "2.1.8"})
    if result.get("status") != "SUCCEEDED":
        raise RuntimeError(f"deploying Republish failed: {result}")
    # A second deployment for the router's configuration: the core applies the router's
    # subscriptions on a configuration change (or at start), not when it is first deployed.
    result = core.deploy(configuration_update={ROUTER: {"MERGE": router}})
    if result.get("status") != "SUCCEEDED":
        raise RuntimeError(f"configuring {ROUTER} failed: {result}")


def loop(kind: str, args: dict[str, Any], timeout_s: float = 300) -> dict[str, Any]:
    return run_module("bench.msg_loops", kind, args, timeout_s)


def measure(res: Results, plan: Plan, core: CoreProcess, port: int) -> None:
    s = "Messaging: local bus, functions and the MQTT bridge"
    root = str(core.root)
    subs, count = 4, (200 if plan.quick else 800)
    rounds = 30 if plan.quick else 200

    def rate(runs: list[dict[str, Any]], field: str) -> tuple[float, ...]:
        return tuple(r[field] / r["elapsed_s"] for r in runs)

    mq = [loop("fanout-mosquitto", {"port": port, "subscribers": subs, "count": count})
          for _ in range(plan.runs)]
    res.add(s, Figure("fan_mosq", f"Mosquitto fan-out, 1 → {subs} paho subscribers", "msg/s",
                      rate(mq, "delivered"), None, higher_is_better=True))
    sp = [loop("fanout-sprig", {"root": root, "subscribers": subs, "count": count})
          for _ in range(plan.runs)]
    res.add(s, Figure("fan_sprig", f"Sprig local bus fan-out, 1 → {subs} subscribers "
                      "(management socket publish + streams)", "msg/s",
                      rate(sp, "delivered"), "fan_mosq", higher_is_better=True))
    pf = [loop("pfp", {"root": root, "count": count, "rounds": rounds})
          for _ in range(plan.runs)]
    res.add(s, Figure("pfp_rate", "publish → pinned Python function → publish", "events/s",
                      rate(pf, "events"), None, higher_is_better=True,
                      note="greengrasssdk (V1) publish from the handler"))
    res.add(s, Figure("pfp_p50", "publish → function → publish, one at a time, p50", "µs",
                      tuple(percentile(r["samples_us"], 0.5) for r in pf), "floor.p50"))
    paho = [loop("rt-paho", {"port": port, "rounds": rounds}) for _ in range(plan.runs)]
    res.add(s, Figure("rt_paho", "MQTT round trip, paho client ↔ Mosquitto, p50", "µs",
                      tuple(percentile(r["samples_us"], 0.5) for r in paho), None))
    bridge = [loop("rt-sprig", {"root": root, "rounds": rounds}) for _ in range(plan.runs)]
    res.add(s, Figure("rt_bridge", "MQTT round trip through Sprig's bridge "
                      "(core → Mosquitto → core), p50", "µs",
                      tuple(percentile(r["samples_us"], 0.5) for r in bridge), "rt_paho"))
    cli_rounds = 5 if plan.quick else 15
    mcli = loop("rt-cli-mosquitto", {"port": port, "rounds": cli_rounds})
    res.add(s, Figure("rt_cli_mosq", "mosquitto_pub → running mosquitto_sub (process per "
                      "message)", "ms", tuple(x / 1000 for x in mcli["samples_us"]), None))
    starts = []
    for _ in range(cli_rounds):
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-m", "sprig", "--version"], check=True, capture_output=True,
                       timeout=60, cwd=REPO)
        starts.append((time.perf_counter() - t0) * 1000)
    res.add(s, Figure("cli_start", "`sprig --version` alone (the CLI's process start)", "ms",
                      tuple(starts), None))
    scli = loop("rt-cli-sprig", {"root": root, "rounds": cli_rounds})
    res.add(s, Figure("rt_cli_sprig", "`sprig pubsub publish --cloud` → running `sprig pubsub "
                      "subscribe --cloud`", "ms", tuple(x / 1000 for x in scli["samples_us"]),
                      "rt_cli_mosq", note="each publish starts a Python CLI process"))


def core_config(port: int) -> dict[str, Any]:
    return {"mqtt": {"host": "127.0.0.1", "port": port, "clientId": "sprig-bench"}}
