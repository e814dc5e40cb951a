"""Fixtures: a small real IpcCore around the real Bus, the server on a real Unix socket, and a
driver for the real awsiotsdk client in a subprocess."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sprig.config.protected import ProtectedKey, Reference, protected_keys
from sprig.ipc.notices import ComponentNotices, Deferral, ValidityReport
from sprig.ipc.server import IpcServer
from sprig.mqtt.bridge import MqttBridge
from sprig.pubsub.bus import Bus
from sprig.sdk_ipc.secrets import SecretRecord, SecretStore
from sprig.shadow.service import ShadowService

DRIVER = Path(__file__).with_name("ipc_driver.py")
TIMEOUT = 20.0


def merge(into: dict[str, Any], key_path: list[str], value: Any) -> None:
    node = into
    for k in key_path[:-1]:
        node = node.setdefault(k, {})
    if not key_path:
        _deep_merge(node, value)         # a MERGE at the root, as the kernel does it
        return
    last = key_path[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        _deep_merge(node[last], value)
    else:
        node[last] = copy.deepcopy(value)


def _deep_merge(a: dict[str, Any], b: Mapping[str, Any]) -> None:
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(a.get(k), dict):
            _deep_merge(a[k], v)
        else:
            a[k] = copy.deepcopy(v)


def _changed_paths(prefix: list[str], value: Any) -> list[list[str]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _changed_paths([*prefix, k], v)]
    return [prefix]


@dataclass
class DictCore:
    """The IpcCore the tests use: tokens, configs and states in dicts, the real Bus."""

    bus: Bus
    bridge: MqttBridge | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    states: dict[str, list[str]] = field(default_factory=dict)
    watchers: dict[str, list[Callable[[list[str]], None]]] = field(default_factory=dict)
    #: A real encrypted store (files in a temporary directory); None: nothing deployed.
    secrets: SecretStore | None = None
    types: dict[str, str] = field(default_factory=dict)
    #: what the components' privileged texts read (the kernel finds them in the recipes)
    references: list[Reference] = field(default_factory=list)
    #: A real shadow service on a real state.db; None: ShadowManager not deployed.
    shadow_service: ShadowService | None = None
    #: the deployments' side of component-update and validation notices
    notices: ComponentNotices = field(default_factory=ComponentNotices)
    #: RestartComponent / StopComponent requests that reached the core, in order
    commands: list[tuple[str, str]] = field(default_factory=list)
    #: what the core's deployment history holds (deployment summaries)
    deployments: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, token: str, config: dict[str, Any] | None = None,
            component_type: str = "aws.greengrass.generic") -> None:
        self.tokens[token] = name
        self.configs[name] = config or {}
        self.versions[name] = "1.0.0"
        self.types[name] = component_type

    def component_type(self, component: str) -> str | None:
        return self.types.get(component)

    def protected_configuration(self, component: str) -> list[ProtectedKey]:
        return protected_keys(component, self.types.get(component, ""), self.references)

    def component_for_token(self, token: str) -> str | None:
        return self.tokens.get(token)

    def verify_peer(self, component: str, peer: Any) -> str | None:
        return None          # the test process stands in for every component

    def access_control(self, component: str) -> Mapping[str, Any]:
        ac = self.configs.get(component, {}).get("accessControl")
        return ac if isinstance(ac, Mapping) else {}

    def get_configuration(self, component: str) -> dict[str, Any] | None:
        c = self.configs.get(component)
        return copy.deepcopy(c) if c is not None else None

    async def update_configuration(self, component: str, key_path: list[str],
                                   value_to_merge: Any) -> None:
        merge(self.configs[component], key_path, value_to_merge)
        for path in _changed_paths(key_path, value_to_merge):
            for w in list(self.watchers.get(component, [])):
                w(path)

    def subscribe_configuration(self, component: str,
                                callback: Callable[[list[str]], None]) -> Callable[[], None]:
        self.watchers.setdefault(component, []).append(callback)
        return lambda: self.watchers[component].remove(callback)

    def subscribe_component_updates(self, component: str,
                                    callback: Callable[[dict[str, Any]], None]
                                    ) -> Callable[[], None]:
        return self.notices.subscribe_updates(component, callback)

    def defer_component_update(self, component: str, deployment_id: str, message: str,
                               recheck_after_ms: int) -> None:
        self.notices.defer(component, Deferral(deployment_id, recheck_after_ms, message))

    def subscribe_configuration_validation(self, component: str,
                                           callback: Callable[[dict[str, Any]], None]
                                           ) -> Callable[[], None]:
        return self.notices.subscribe_validation(component, callback)

    def report_configuration_validity(self, component: str, deployment_id: str, status: str,
                                      message: str) -> None:
        self.notices.report_validity(component, ValidityReport(deployment_id, status, message))

    def report_state(self, component: str, state: str) -> None:
        self.states.setdefault(component, []).append(state)

    def component_details(self, name: str) -> dict[str, Any] | None:
        if name not in self.configs:
            return None
        return {"componentName": name, "version": self.versions[name], "state": "RUNNING",
                "configuration": self.get_configuration(name)}

    def list_component_details(self) -> list[dict[str, Any]]:
        return [d for n in sorted(self.configs) if (d := self.component_details(n)) is not None]

    async def restart_component(self, name: str) -> bool:
        if name not in self.configs:
            return False
        self.commands.append(("restart", name))
        return True

    async def stop_component(self, name: str) -> bool:
        if name not in self.configs:
            return False
        self.commands.append(("stop", name))
        return True

    def deployment_summary(self, deployment_id: str) -> dict[str, Any] | None:
        return next((d for d in self.deployments if d["deploymentId"] == deployment_id), None)

    def deployment_summaries(self) -> list[dict[str, Any]]:
        return list(self.deployments)

    def find_secret(self, secret_id: str) -> SecretRecord | None:
        return self.secrets.find(secret_id) if self.secrets is not None else None

    def shadows(self) -> ShadowService | None:
        return self.shadow_service


def pubsub_policy(component: str, ops: list[str], resources: list[str]) -> dict[str, Any]:
    return {"aws.greengrass.ipc.pubsub": {f"{component}:pubsub:1": {
        "policyDescription": "test", "operations": ops, "resources": resources}}}


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short, private path: AF_UNIX paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="ipc", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    async with Bus() as b:
        yield b


@pytest.fixture
def core(bus: Bus) -> DictCore:
    return DictCore(bus)


@pytest.fixture
async def server(sock_dir: Path, core: DictCore) -> AsyncIterator[IpcServer]:
    async with IpcServer(sock_dir / "ipc.socket", core, max_payload=4096) as s:
        yield s


class IpcError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class Driver:
    """One real GreengrassCoreIPCClientV2 in a subprocess, driven by JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        self.proc = proc
        self.hello = hello

    @classmethod
    async def start(cls, socket_path: Path, token: str) -> Driver:
        env = dict(os.environ, AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT=str(
            socket_path), SVCUID=token)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(DRIVER), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env)
        d = cls(proc, {})
        d.hello = await d._read()
        return d

    @property
    def connected(self) -> bool:
        return self.hello.get("ok") == "connected"

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        assert line, f"the driver exited (rc={await self.proc.wait()})"
        result: dict[str, Any] = json.loads(line)
        return result

    async def raw(self, cmd: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._read()

    async def __call__(self, cmd: str, **kw: Any) -> Any:
        r = await self.raw(cmd, **kw)
        if "error" in r:
            raise IpcError(r["error"], r["message"])
        return r["ok"]

    async def events(self, sub: int, n: int) -> list[Any]:
        r = await self("events", sub=sub, n=n)
        assert not r["errors"], r["errors"]
        assert len(r["events"]) >= n, f"only {r['events']} of {n} events arrived"
        events: list[Any] = r["events"]
        return events

    async def close(self) -> None:
        if self.proc.returncode is None:
            if self.connected:
                await self.raw("close")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), TIMEOUT)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def drivers() -> AsyncIterator[Callable[[Path, str], Any]]:
    """``await start(socket, token)`` → a Driver; all are stopped at the end of the test."""
    started: list[Driver] = []

    async def start(socket_path: Path, token: str) -> Driver:
        d = await Driver.start(socket_path, token)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()
        await d.proc.wait()
