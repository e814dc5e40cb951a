"""A stand-in for the AWS IoT Device Shadow service on a real MQTT broker, for tests only.

Written from AWS's documented MQTT API ("Device Shadow MQTT topics", "Interacting with
shadows"), independently of ``sprig.shadow.document``: requests on
``$aws/things/T/shadow[/name/N]/get|update|delete`` are answered on ``…/accepted`` or
``…/rejected`` with the request's ``clientToken``; an accepted update also publishes
``…/update/documents`` (and ``…/update/delta``). Documents live in :attr:`docs`, keyed by
``(thing, name)``; :meth:`set_offline` edits one directly, as a cloud app would while the device
is offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Any

import aiomqtt

_REQ = re.compile(r"^\$aws/things/([^/]+)/shadow(?:/name/([^/]+))?/(get|update|delete)$")


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class CloudShadows:
    def __init__(self, port: int) -> None:
        self.port = port
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()
        self.connections = 0

    async def __aenter__(self) -> CloudShadows:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    def set_offline(self, thing: str, name: str, state: dict[str, Any]) -> None:
        """A cloud-side change made while nobody is connected."""
        key = (thing, name)
        self.docs[key] = _merge(self.docs.get(key, {}), state)
        self.versions[key] = self.versions.get(key, 0) + 1

    async def app_update(self, thing: str, name: str, state: dict[str, Any]) -> None:
        """A cloud app's update over MQTT (its documents message reaches the device)."""
        assert self._client is not None
        await self._answer(self._client, thing, name, "update",
                           {"state": state, "clientToken": "app"})

    async def _run(self) -> None:
        while True:
            try:
                # timeout: a connect that lands while the broker restarts is not answered
                # (aiomqtt waits its default 10 s); retry sooner.
                async with aiomqtt.Client("127.0.0.1", self.port, identifier="cloud-shadows",
                                          timeout=2) as client:
                    self._client = client
                    await client.subscribe("$aws/things/+/shadow/#", qos=1)
                    self._ready.set()
                    async with self.changed:
                        self.connections += 1
                        self.changed.notify_all()
                    async for m in client.messages:
                        match = _REQ.match(m.topic.value)
                        if match is None:
                            continue
                        body = json.loads(m.payload) if m.payload else {}
                        assert isinstance(body, dict)
                        await self._answer(client, match[1], match[2] or "", match[3], body)
            except aiomqtt.MqttError:
                self._client = None
                await asyncio.sleep(0.05)     # the broker restarts: reconnect

    async def _answer(self, client: aiomqtt.Client, thing: str, name: str, op: str,
                      body: dict[str, Any]) -> None:
        key = (thing, name)
        prefix = f"$aws/things/{thing}/shadow" + (f"/name/{name}" if name else "")
        token = body.get("clientToken")
        now = int(time.time())

        async def send(suffix: str, msg: dict[str, Any]) -> None:
            if token is not None:
                msg["clientToken"] = token
            await client.publish(f"{prefix}/{op}/{suffix}", json.dumps(msg).encode(), qos=1)

        async with self.changed:
            self.requests.append((op, body))
            if op == "get":
                if key not in self.docs:
                    await send("rejected", {"code": 404, "message":
                                            f"No shadow exists with name: {name or thing}"})
                else:
                    await send("accepted", {"state": self.docs[key], "metadata": {},
                                            "version": self.versions[key], "timestamp": now})
            elif op == "delete":
                if key not in self.docs:
                    await send("rejected", {"code": 404, "message": "No shadow exists"})
                else:
                    del self.docs[key]
                    await send("accepted", {"version": self.versions[key], "timestamp": now})
            else:
                version = body.get("version")
                current = self.versions.get(key, 0)
                if version is not None and version != current:
                    await send("rejected", {"code": 409, "message": "Version conflict"})
                else:
                    previous = self.docs.get(key)
                    state = body["state"]
                    new = {} if state is None else dict(previous or {})
                    for section, value in (state or {}).items():
                        merged = None if value is None else _merge(new.get(section, {}), value)
                        if merged:
                            new[section] = merged
                        else:
                            new.pop(section, None)
                    self.docs[key] = new
                    self.versions[key] = current + 1
                    await send("accepted", {"state": state, "version": current + 1,
                                            "timestamp": now})
                    docs: dict[str, Any] = {"current": {"state": new, "version": current + 1},
                                            "timestamp": now}
                    if previous is not None:
                        docs["previous"] = {"state": previous, "version": current}
                    await send("documents", docs)
            self.changed.notify_all()
