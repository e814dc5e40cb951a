"""Messaging measurement loops, run in a fresh interpreter: ``python -m bench.msg_loops KIND
JSON``. Prints one JSON line.

Kinds: ``fanout-sprig`` / ``fanout-mosquitto`` (one publisher, N subscribers, delivered msgs/s),
``pfp`` (publish → function → publish: events/s and one-at-a-time round trips),
``rt-sprig`` / ``rt-paho`` (an MQTT round trip: publish to the broker, receive it back through
the bridge, or with a plain MQTT client), ``rt-cli-sprig`` / ``rt-cli-mosquitto`` (the same
with the command-line tools, one publishing process per message).
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.loops import _UnixHTTP

DEADLINE_S = 60.0
PAYLOAD = '{"n": 1}'


class SprigStream:
    """A ``pubsub.subscribe`` stream on the management socket, read in a thread."""

    def __init__(self, root: str, topic: str, cloud: bool = False) -> None:
        self.conn = _UnixHTTP(str(Path(root) / "run" / "sprig.sock"))
        self.conn.timeout = DEADLINE_S
        body = json.dumps({"method": "pubsub.subscribe",
                           "params": {"topic": topic, "cloud": cloud}})
        self.conn.request("POST", "/stream", body, {"Content-Type": "application/json"})
        self.resp = self.conn.getresponse()
        first = json.loads(self.resp.readline())
        if "subscribed" not in first:
            raise RuntimeError(f"subscribe failed: {first}")

    def next_payload(self) -> bytes:
        line = self.resp.readline()
        if not line:
            raise EOFError("stream closed")
        return base64.b64decode(json.loads(line)["payload"])

    def close(self) -> None:
        self.conn.close()


class SprigRpc:
    def __init__(self, root: str) -> None:
        self.conn = _UnixHTTP(str(Path(root) / "run" / "sprig.sock"))

    def call(self, method: str, params: dict[str, Any]) -> Any:
        self.conn.request("POST", "/rpc", json.dumps({"method": method, "params": params}),
                          {"Content-Type": "application/json"})
        doc = json.loads(self.conn.getresponse().read())
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        return doc["result"]

    def publish(self, topic: str, payload: bytes, cloud: bool = False) -> Any:
        return self.call("pubsub.publish", {"topic": topic, "cloud": cloud,
                                            "payload": base64.b64encode(payload).decode()})


def _drain(read: Any, count: int, done: list[float], errors: list[BaseException]) -> None:
    try:
        for _ in range(count):
            read()
        done.append(time.perf_counter())
    except BaseException as e:  # reported by the caller
        errors.append(e)


def fanout_sprig(root: str, subscribers: int, count: int) -> dict[str, Any]:
    streams = [SprigStream(root, "bench/fan") for _ in range(subscribers)]
    done: list[float] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_drain, args=(s.next_payload, count, done, errors),
                                daemon=True) for s in streams]
    for t in threads:
        t.start()
    rpc = SprigRpc(root)
    payload = b'{"n": 1}'
    t0 = time.perf_counter()
    for _ in range(count):
        rpc.publish("bench/fan", payload)
    published = time.perf_counter()
    for t in threads:
        t.join(DEADLINE_S)
    if errors or len(done) < subscribers:
        raise RuntimeError(f"fan-out incomplete: {len(done)}/{subscribers} done, {errors[:1]}")
    return {"delivered": subscribers * count, "elapsed_s": max(done) - t0,
            "publish_s": published - t0}


def _paho(port: int) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    return client


def fanout_mosquitto(port: int, subscribers: int, count: int) -> dict[str, Any]:
    """The same fan-out through Mosquitto with paho clients (QoS 0)."""
    done: list[float] = []
    ready = threading.Barrier(subscribers + 1)
    subs = []
    for _ in range(subscribers):
        c = _paho(port)
        got = [0]

        def on_message(_c: Any, _u: Any, _m: Any, got: list[int] = got) -> None:
            got[0] += 1
            if got[0] == count:
                done.append(time.perf_counter())

        def on_subscribe(*_a: Any) -> None:
            ready.wait(DEADLINE_S)

        c.on_message = on_message
        c.on_subscribe = on_subscribe
        c.subscribe("bench/fan", 0)
        c.loop_start()
        subs.append(c)
    ready.wait(DEADLINE_S)
    pub = _paho(port)
    pub.loop_start()
    t0 = time.perf_counter()
    for _ in range(count):
        pub.publish("bench/fan", b'{"n": 1}', 0)
    published = time.perf_counter()
    deadline = time.monotonic() + DEADLINE_S
    while len(done) < subscribers and time.monotonic() < deadline:
        time.sleep(0.001)
    for c in [*subs, pub]:
        c.loop_stop()
        c.disconnect()
    if len(done) < subscribers:
        raise RuntimeError(f"mosquitto fan-out incomplete: {len(done)}/{subscribers}")
    return {"delivered": subscribers * count, "elapsed_s": max(done) - t0,
            "publish_s": published - t0}


def pfp(root: str, count: int, rounds: int) -> dict[str, Any]:
    """Publish on bench/in; the function republishes on bench/out. First ``rounds`` one at a
    time (latency), then ``count`` back to back (events/s)."""
    out = SprigStream(root, "bench/out")
    rpc = SprigRpc(root)
    samples = []
    for i in range(rounds + 3):
        t0 = time.perf_counter()
        rpc.publish("bench/in", json.dumps({"i": i}).encode())
        out.next_payload()
        if i >= 3:
            samples.append((time.perf_counter() - t0) * 1e6)
    done: list[float] = []
    errors: list[BaseException] = []
    t = threading.Thread(target=_drain, args=(out.next_payload, count, done, errors),
                         daemon=True)
    t.start()
    t0 = time.perf_counter()
    for i in range(count):
        rpc.publish("bench/in", json.dumps({"i": i}).encode())
    t.join(DEADLINE_S)
    if errors or not done:
        raise RuntimeError(f"publish-function-publish incomplete: {errors[:1]}")
    return {"samples_us": samples, "events": count, "elapsed_s": done[0] - t0}


def rt_sprig(root: str, rounds: int) -> dict[str, Any]:
    """Core → broker → bridge → core: publish with cloud=True, receive on a cloud
    subscription (both through the management socket)."""
    sub = SprigStream(root, "bench/rt", cloud=True)
    rpc = SprigRpc(root)
    samples = []
    for i in range(rounds + 3):
        t0 = time.perf_counter()
        rpc.publish("bench/rt", b'{"n": %d}' % i, cloud=True)
        sub.next_payload()
        if i >= 3:
            samples.append((time.perf_counter() - t0) * 1e6)
    return {"samples_us": samples}


def rt_paho(port: int, rounds: int) -> dict[str, Any]:
    got = threading.Semaphore(0)
    sub = _paho(port)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.on_message = lambda *_a: got.release()
    sub.subscribe("bench/rt", 0)
    sub.loop_start()
    subscribed.wait(DEADLINE_S)
    pub = _paho(port)
    pub.loop_start()
    samples = []
    for i in range(rounds + 3):
        t0 = time.perf_counter()
        pub.publish("bench/rt", b'{"n": %d}' % i, 0)
        if not got.acquire(timeout=DEADLINE_S):
            raise RuntimeError("paho round trip lost a message")
        if i >= 3:
            samples.append((time.perf_counter() - t0) * 1e6)
    for c in (sub, pub):
        c.loop_stop()
        c.disconnect()
    return {"samples_us": samples}


def _lines(stream: Any) -> queue.Queue[str]:
    """Lines of ``stream`` on a queue (read in a thread), so every wait has a deadline."""
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put("")

    threading.Thread(target=pump, daemon=True).start()
    return q


def _cli_rt(sub_argv: list[str], pub_argv: list[str], rounds: int,
            ready_on_stderr: bool) -> dict[str, Any]:
    """A subscriber process prints each message; each round runs one publisher process and
    waits for the subscriber to print the payload. Readiness: Sprig's subscriber says
    "Subscribed" on stderr; ``mosquitto_sub -d`` prints the SUBACK on stdout (line-buffered
    through ``stdbuf``, as it block-buffers a pipe)."""
    sub = subprocess.Popen(sub_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sub.stdout is not None and sub.stderr is not None
        out = _lines(sub.stdout)
        ready = _lines(sub.stderr) if ready_on_stderr else out
        while True:
            line = ready.get(timeout=DEADLINE_S)
            if not line:
                raise RuntimeError("subscriber exited before subscribing")
            if "Subscribed" in line or "SUBACK" in line:
                break
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run(pub_argv, check=True, timeout=30, stdout=subprocess.DEVNULL)
            while True:
                line = out.get(timeout=DEADLINE_S)
                if not line:
                    raise RuntimeError("subscriber closed")
                if line.rstrip("\n").endswith(PAYLOAD):
                    break
            samples.append((time.perf_counter() - t0) * 1e6)
        return {"samples_us": samples}
    finally:
        sub.kill()
        sub.wait()


def main(argv: list[str]) -> int:
    kind, a = argv[0], json.loads(argv[1])
    if kind == "fanout-sprig":
        out = fanout_sprig(a["root"], a["subscribers"], a["count"])
    elif kind == "fanout-mosquitto":
        out = fanout_mosquitto(a["port"], a["subscribers"], a["count"])
    elif kind == "pfp":
        out = pfp(a["root"], a["count"], a["rounds"])
    elif kind == "rt-sprig":
        out = rt_sprig(a["root"], a["rounds"])
    elif kind == "rt-paho":
        out = rt_paho(a["port"], a["rounds"])
    elif kind == "rt-cli-sprig":
        base = [sys.executable, "-m", "sprig", "pubsub"]
        out = _cli_rt([*base, "subscribe", "--cloud", "bench/cli", "--root", a["root"]],
                      [*base, "publish", "--cloud", "bench/cli", "--payload", PAYLOAD,
                       "--root", a["root"]], a["rounds"], True)
    elif kind == "rt-cli-mosquitto":
        port = str(a["port"])
        out = _cli_rt(["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", port,
                       "-t", "bench/cli2"],
                      ["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "bench/cli2",
                       "-m", PAYLOAD], a["rounds"], False)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
