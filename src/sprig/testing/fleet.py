"""Real parts for the fleet's tests and benchmarks: an S3 endpoint (moto's server, a stand-in
for any S3-compatible store), a Mosquitto that keeps retained messages across restarts, and a
fleet of real cores each on its own root.

Readiness is read from the servers' own logs (moto's "Running on" line, Mosquitto's "running"),
never guessed with a sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sprig.mqtt.mosquitto import BrokerTls, Mosquitto, free_port
from sprig.testing.core import CoreProcess

BUCKET = "sprig-fleet"
#: moto accepts any key pair; these are the ones the tests' cores and operators use.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIASPRIGFLEETTEST01", "AWS_SECRET_ACCESS_KEY":
           "sprig-fleet-test-secret-key-0123456789ab", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoServer:
    """``python -m moto.server`` on a loopback port; ``url`` once started."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **AWS_ENV})
        ready = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            with self.log_path.open("ab") as log:
                for raw in self.proc.stdout:
                    log.write(raw)
                    log.flush()
                    lines.append(raw.decode(errors="replace"))
                    if b"Running on" in raw:
                        ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout_s) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("moto server did not start:\n" + "".join(lines[-20:]))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])


def persistent_broker(workdir: Path, port: int | None = None,
                      tls: BrokerTls | None = None) -> Mosquitto:
    """A Mosquitto that saves retained messages when it stops (a restart keeps them), as a
    production broker must for a fleet: the broker holds the fleet's state."""
    store = workdir / "persist"
    store.mkdir(parents=True, exist_ok=True)
    return Mosquitto(workdir, port=port, tls=tls, extra_config=(
        "persistence true", f"persistence_location {store}/", "autosave_interval 1"))


@dataclass
class Fleet:
    """Cores on roots under ``base``, joined to a broker and a store."""

    base: Path
    broker_port: int
    store_url: str
    prefix: str = "sprig"
    cores: dict[str, CoreProcess] = field(default_factory=dict)
    #: more ``mqtt`` settings per thing (and ``operator``): TLS files
    mqtt_extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def config(self, thing: str, groups: list[str], **extra: Any) -> dict[str, Any]:
        return {"thingName": thing,
                "mqtt": {"host": "127.0.0.1", "port": self.broker_port,
                         "reconnect": {"minSeconds": 0.2, "maxSeconds": 2},
                         **self.mqtt_extra.get(thing, {})},
                "fleet": {"thingGroups": groups, "topicPrefix": self.prefix,
                          "store": {"uri": f"s3://{BUCKET}/store", "endpoint": self.store_url}},
                **extra}

    def add(self, thing: str, groups: list[str], *, start: bool = True,
            **extra: Any) -> CoreProcess:
        core = CoreProcess(self.base / thing, config=self.config(thing, groups, **extra),
                           env={**os.environ, **AWS_ENV})
        self.cores[thing] = core
        if start:
            core.start(timeout_s=120)
        return core

    def operator_config(self) -> Path:
        path = self.base / "operator.yaml"
        path.write_text(yaml.safe_dump({
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port,
                     **self.mqtt_extra.get("operator", {})},
            "fleet": {"topicPrefix": self.prefix,
                      "store": {"uri": f"s3://{BUCKET}/store", "endpoint": self.store_url}}}))
        return path

    def sprig(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``sprig fleet ...`` as the operator would."""
        return subprocess.run(
            [sys.executable, "-m", "sprig", "fleet", args[0], "--config",
             str(self.operator_config()), *args[1:]],
            capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **AWS_ENV})

    def stop_all(self) -> None:
        for core in self.cores.values():
            with contextlib.suppress(Exception):
                if core.proc is not None:
                    core.proc.terminate()
        for core in self.cores.values():
            with contextlib.suppress(Exception):
                if core.proc is not None:
                    core.proc.wait(60)
                    core.proc = None


@contextlib.contextmanager
def moto(workdir: Path) -> Iterator[MotoServer]:
    server = MotoServer(workdir / "moto.log").start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class ThreadBroker:
    """A :class:`Mosquitto` driven from synchronous code (tests that talk to cores and run
    the CLI): its asyncio loop runs in a thread of its own."""

    def __init__(self, workdir: Path, *, persistent: bool = True,
                 tls: BrokerTls | None = None) -> None:
        import asyncio

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.broker = persistent_broker(workdir, tls=tls) if persistent else \
            Mosquitto(workdir, tls=tls)

    @property
    def port(self) -> int:
        return self.broker.port

    def _run(self, coro: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def start(self) -> ThreadBroker:
        self._run(self.broker.start())
        return self

    def stop(self) -> None:
        self._run(self.broker.stop())

    def restart(self) -> None:
        self._run(self.broker.restart())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class Seen:
    at: float
    topic: str
    payload: bytes
    retained: bool


class Watcher:
    """A plain MQTT client that records every message on ``filters`` (for counting messages
    and measuring the pace of a rollout), and lets a test wait for one."""

    def __init__(self, port: int, *filters: str) -> None:
        import time

        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Seen] = []
        self._cond = threading.Condition()
        self._client = paho.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"watcher-{os.getpid()}-{id(self)}")
        self._filters = filters
        self._clock = time.monotonic

        subscribed = threading.Event()
        pending: set[int] = set()

        def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            for f in self._filters:
                pending.add(client.subscribe(f, qos=1)[1])

        def on_subscribe(client: Any, userdata: Any, mid: int, *rest: Any) -> None:
            pending.discard(mid)
            if not pending:
                subscribed.set()

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with self._cond:
                self.messages.append(Seen(self._clock(), msg.topic, bytes(msg.payload),
                                          bool(msg.retain)))
                self._cond.notify_all()

        self._client.on_connect = on_connect
        self._client.on_subscribe = on_subscribe
        self._client.on_message = on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        # Nothing published after this returns can be missed: the broker has acknowledged
        # every subscription (a test that published at once once lost the first answer).
        if filters and not subscribed.wait(30):
            self.close()
            raise TimeoutError(f"the broker on port {port} did not acknowledge {filters}")

    def wait(self, predicate: Any, timeout_s: float = 60) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate(self.messages), timeout_s))

    def live(self, suffix: str = "") -> list[Seen]:
        with self._cond:
            return [m for m in self.messages if not m.retained and m.topic.endswith(suffix)]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def start_all(cores: list[CoreProcess], timeout_s: float = 120) -> None:
    """Start several cores at once (each start waits for its management API)."""
    threads = [threading.Thread(target=c.start, kwargs={"timeout_s": timeout_s})
               for c in cores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    missing = [str(c.root) for c in cores if c.proc is None or c.proc.poll() is not None]
    if missing:
        raise RuntimeError(f"cores did not start: {missing}")


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 and client certificates (EC P-256, 2 days)."""

    ca: Path
    server_cert: Path
    server_key: Path

    def client(self, name: str) -> tuple[Path, Path]:
        d = self.ca.parent
        if not (d / f"{name}.pem").exists():
            _leaf(d, name, "extendedKeyUsage=clientAuth\n")
        return d / f"{name}.pem", d / f"{name}.key"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _leaf(d: Path, name: str, ext: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
             cwd=d)


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _leaf(d, "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                       "extendedKeyUsage=serverAuth\n")
    for f in d.iterdir():
        f.chmod(0o644)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key")
