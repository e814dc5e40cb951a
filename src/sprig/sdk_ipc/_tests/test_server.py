"""The V1 HTTP IPC driven by the real, unmodified ``greengrasssdk`` in a subprocess."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sprig.errors import ValidationError
from sprig.functions.errors import FunctionNotFound, QueueFull
from sprig.functions.invocation import (
    FunctionErrorKind,
    Invocation,
    InvocationResult,
    InvocationType,
)
from sprig.pubsub.bus import Bus
from sprig.sdk_ipc.env import ROUTER_FUNCTION_ARN, sdk_env, shim_paths
from sprig.sdk_ipc.router import no_subscription_message
from sprig.sdk_ipc.secrets import SecretStore, parse_secrets
from sprig.sdk_ipc.server import SdkIpcServer

ME = "arn:aws:lambda:us-east-1:123456789012:function:me:1"
ECHO = "arn:aws:lambda:us-east-1:123456789012:function:echo:3"
SINK = "arn:aws:lambda:us-east-1:123456789012:function:sink:1"
TOKEN = "tok-me-123"


class FunctionsInvoker:
    """A real Invoker running in-process handlers, named by ARN or component name."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Invocation]] = []
        self.changed = asyncio.Condition()
        self.full: set[str] = set()

    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        name = function.split(":")[6] if function.startswith("arn:") else function
        if name not in ("echo", "sink", "com.example.Sink"):
            raise FunctionNotFound(function)
        if name in self.full:
            raise QueueFull(function, 1)
        async with self.changed:
            self.calls.append((function, invocation))
            self.changed.notify_all()
        if invocation.invocation_type is InvocationType.EVENT:
            return InvocationResult(invocation.request_id, b"")
        body = json.loads(invocation.payload or b"{}")
        if body.get("fail") == "handled":
            return InvocationResult(invocation.request_id, json.dumps(
                {"errorMessage": "bad input", "errorType": "ValueError"}).encode(),
                FunctionErrorKind.HANDLED)
        if body.get("fail") == "unhandled":
            return InvocationResult(invocation.request_id, json.dumps(
                {"errorMessage": "Task timed out", "errorType": "Sandbox.Timeout"}).encode(),
                FunctionErrorKind.UNHANDLED)
        return InvocationResult(invocation.request_id, json.dumps(
            {"echo": body, "context": invocation.client_context}).encode())

    async def wait_calls(self, n: int) -> list[tuple[str, Invocation]]:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.calls) >= n), 10)
        return self.calls


class Cloud:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.sent.append((topic, payload, qos))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[SdkIpcServer, FunctionsInvoker, Bus, Cloud]]:
    invoker, cloud = FunctionsInvoker(), Cloud()
    store = SecretStore(tmp_path / "secrets.enc", tmp_path / "secrets.key")
    store.replace(parse_secrets({"secrets": {"db": {
        "secretString": "hunter2",
        "arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"}}},
        now_ms=1700000000000))
    async with Bus() as bus:
        server = SdkIpcServer(invoker=invoker, bus=bus, cloud=cloud, secrets=store)
        await server.start()
        server.register_function(ME, TOKEN, "com.example.Me", {
            "aws.greengrass.SecretManager": {"me:secrets:1": {
                "operations": ["aws.greengrass#GetSecretValue"],
                "resources": ["arn:aws:secretsmanager:*:*:secret:db-*"]}}})
        server.register_function(SINK, "tok-sink", "com.example.Sink")
        try:
            yield server, invoker, bus, cloud
        finally:
            await server.aclose()


async def run_sdk(server: SdkIpcServer, code: str, token: str = TOKEN) -> Any:
    """Run ``code`` under the real greengrasssdk with the shims; it prints one JSON value."""
    env = dict(os.environ)
    env.update(sdk_env(ME, token, server.port))
    env["PYTHONPATH"] = str(shim_paths()[0])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import json, greengrasssdk\n" + code, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


PUBLISH = """
c = greengrasssdk.client('iot-data')
c.publish(topic='hello/world', payload=b'{"m": 1}')
try:
    c.publish(topic='nobody/listens', payload=b'x')
    print(json.dumps("no error"))
except Exception as e:
    print(json.dumps(str(e)))
"""


async def test_publish_routed_by_subscriptions(env: Any) -> None:
    server, invoker, bus, cloud = env
    server.set_subscriptions({
        "to-cloud": {"id": "to-cloud", "source": "component:com.example.Me",
                     "subject": "hello/+", "target": "cloud"},
        "to-comp": {"id": "to-comp", "source": ME, "subject": "hello/#",
                    "target": "component:com.example.Generic"},
        "to-fn": {"id": "to-fn", "source": ME, "subject": "hello/world", "target": SINK},
        "to-lambda-comp": {"id": "to-lambda-comp", "source": ME, "subject": "hello/#",
                           "target": "component:com.example.Sink"},
        "other": {"id": "other", "source": "component:someone.else", "subject": "#",
                  "target": "cloud"},
    })
    local = bus.subscribe("hello/#", owner="test")
    err = await run_sdk(server, PUBLISH)
    assert err.endswith(no_subscription_message(ME, "nobody/listens")) or \
        no_subscription_message(ME, "nobody/listens") in err
    assert cloud.sent == [("hello/world", b'{"m": 1}', 0)]
    m = await asyncio.wait_for(local.get(), 5)
    assert (m.topic, m.payload, m.source) == ("hello/world", b'{"m": 1}', "com.example.Me")
    calls = await invoker.wait_calls(2)
    targets = sorted(t for t, _ in calls)
    assert targets == sorted([SINK, "com.example.Sink"])
    for _, inv in calls:
        assert inv.invocation_type is InvocationType.EVENT
        assert inv.client_context == {"custom": {"source": ME, "subject": "hello/world"}}
        assert inv.payload == b'{"m": 1}'


INVOKE = """
c = greengrasssdk.client('lambda')
arn = 'arn:aws:lambda:us-east-1:123456789012:function:echo'
out = {}
r = c.invoke(FunctionName=arn, Qualifier='3', Payload=b'{"a": 1}',
             ClientContext=__import__('base64').b64encode(b'{"custom": {"k": "v"}}'))
out['rr'] = [json.loads(r['Payload'].read()), r['FunctionError']]
r = c.invoke(FunctionName=arn + ':3', Payload=b'{"fail": "handled"}')
out['handled'] = [json.loads(r['Payload']), r['FunctionError']]
r = c.invoke(FunctionName=arn + ':3', Payload=b'{"fail": "unhandled"}')
out['unhandled'] = [json.loads(r['Payload']), r['FunctionError']]
r = c.invoke(FunctionName=arn + ':3', InvocationType='Event', Payload=b'{"e": 1}')
out['event'] = [r['Payload'].decode(), r['FunctionError']]
try:
    c.invoke(FunctionName='arn:aws:lambda:us-east-1:123456789012:function:nope:1')
    out['missing'] = 'no error'
except Exception as e:
    out['missing'] = str(e)
print(json.dumps(out))
"""


async def test_lambda_invoke_rr_event_and_errors(env: Any) -> None:
    server, invoker, _, _ = env
    out = await run_sdk(server, INVOKE)
    assert out["rr"] == [{"echo": {"a": 1}, "context": {"custom": {"k": "v"}}}, ""]
    assert out["handled"] == [{"errorMessage": "bad input", "errorType": "ValueError"},
                              "Handled"]
    assert out["unhandled"][1] == "Unhandled"
    assert out["unhandled"][0]["errorType"] == "Sandbox.Timeout"
    assert out["event"] == ["", ""]
    assert "404" in out["missing"] and "Function not found" in out["missing"]
    calls = await invoker.wait_calls(4)
    assert calls[0][0] == ECHO
    assert calls[0][1].source == "sdk"
    assert any(i.invocation_type is InvocationType.EVENT and i.payload == b'{"e": 1}'
               for _, i in calls)


SECRETS = """
c = greengrasssdk.client('secretsmanager')
out = {}
r = c.get_secret_value(SecretId='db')
out['ok'] = [r['SecretString'], r['Name'], r['CreatedDate'].year]
try:
    c.get_secret_value(SecretId='nope')
except Exception as e:
    out['missing'] = [type(e).__name__, str(e)]
print(json.dumps(out))
"""


async def test_get_secret_value(env: Any) -> None:
    server, _, _, _ = env
    out = await run_sdk(server, SECRETS)
    assert out["ok"] == ["hunter2", "db", 2023]
    assert out["missing"][0] == "SecretsManagerError"
    assert "404" in out["missing"][1] and "nope" in out["missing"][1]


async def test_secret_refused_without_policy(env: Any) -> None:
    server, _, _, _ = env
    server.register_function(ME, "tok-nopolicy", "com.example.NoPolicy")
    out = await run_sdk(server, """
try:
    greengrasssdk.client('secretsmanager').get_secret_value(SecretId='db')
    print(json.dumps('no error'))
except Exception as e:
    print(json.dumps(str(e)))
""", token="tok-nopolicy")
    assert "403" in out and "com.example.NoPolicy is not authorized" in out
    assert "aws.greengrass#GetSecretValue" in out


async def test_shadow_is_refused_clearly(env: Any) -> None:
    server, _, _, _ = env
    out = await run_sdk(server, """
try:
    greengrasssdk.client('iot-data').get_thing_shadow(thingName='t')
    print(json.dumps('no error'))
except Exception as e:
    print(json.dumps(str(e)))
""")
    # No local shadow service behind this server: the V1 call says what to deploy.
    assert "aws.greengrass.ShadowManager is not deployed" in out and "404" in out


async def test_raw_http_bad_requests(env: Any) -> None:
    server, invoker, _, _ = env
    base = f"http://127.0.0.1:{server.port}/2016-11-01/functions/"
    async with aiohttp.ClientSession() as s:
        async with s.post(base + ECHO, data=b"{}") as r:
            assert r.status == 401 and "Authorization" in await r.text()
        async with s.post(base + ECHO, data=b"{}", headers={"Authorization": "wrong"}) as r:
            assert r.status == 403
        h = {"Authorization": TOKEN}
        async with s.post(base + ECHO, data=b"{}", headers={
                **h, "X-Amz-Invocation-Type": "DryRunX"}) as r:
            assert r.status == 400 and "X-Amz-Invocation-Type" in await r.text()
        async with s.post(base + ECHO, data=b"{}", headers={
                **h, "X-Amz-Client-Context": "%%%"}) as r:
            assert r.status == 400 and "base64" in await r.text()
        async with s.post(base + "not-an-arn", data=b"{}", headers=h) as r:
            assert r.status == 400 and "ARN" in await r.text()
        ctx = base64.b64encode(json.dumps({"custom": {"subject": "a/#"}}).encode()).decode()
        async with s.post(base + ROUTER_FUNCTION_ARN, data=b"{}", headers={
                **h, "X-Amz-Client-Context": ctx, "X-Amz-Invocation-Type": "Event"}) as r:
            assert r.status == 400 and "wildcards" in await r.text()
        async with s.get(base + ECHO, headers={**h, "X-Amz-InvocationId": "zzz"}) as r:
            assert r.status == 404
        async with s.get(base + ME + "/work", headers=h) as r:
            assert r.status == 404 and "not served" in await r.text()
        invoker.full.add("echo")
        async with s.post(base + ECHO, data=b"{}", headers={
                **h, "X-Amz-Invocation-Type": "Event"}) as r:
            assert r.status == 429
        # another function cannot fetch my result
        invoker.full.clear()
        async with s.post(base + ECHO, data=b"{}", headers=h) as r:
            inv_id = r.headers["X-Amz-InvocationId"]
        async with s.get(base + ECHO, headers={"Authorization": "tok-sink",
                                               "X-Amz-InvocationId": inv_id}) as r:
            assert r.status == 404
        async with s.get(base + ECHO, headers={**h, "X-Amz-InvocationId": inv_id}) as r:
            assert r.status == 200 and r.headers["X-Amz-Function-Error"] == ""


def test_bad_subscriptions_are_refused() -> None:
    server = SdkIpcServer(invoker=FunctionsInvoker())
    good = {"id": "s", "source": ME, "subject": "a", "target": "cloud"}
    server.set_subscriptions({"s": good})
    cases = [
        ({"s": {**good, "id": "t"}}, r"subscriptions\.s\.id: must equal"),
        ({"s": {**good, "source": "arn:aws:lambda:us-east-1:123456789012:function:me"}},
         r"subscriptions\.s\.source: .*version"),
        ({"s": {**good, "target": ECHO.rsplit(":", 1)[0] + ":$LATEST"}},
         r"subscriptions\.s\.target: .*\$LATEST"),
        ({"s": {**good, "target": "clouds"}}, r"subscriptions\.s\.target: .*allowed: cloud"),
        ({"s": {**good, "subject": "a/#/b"}}, r"subscriptions\.s\.subject: '#'"),
    ]
    for cfg, pattern in cases:
        with pytest.raises(ValidationError, match=pattern):
            server.set_subscriptions(cfg)


NODE_COMPAT = Path(__file__).resolve().parents[4] / ".compat" / "node" / "node_modules"
NODE_SCRIPT = r"""
const GG = require('aws-greengrass-core-sdk');
const out = {};
const iot = new GG.IotData();
const lambda = new GG.Lambda();
const sm = new GG.SecretsManager();
const arn = 'arn:aws:lambda:us-east-1:123456789012:function:echo';
const step = (name, fn) => new Promise((resolve) => fn((err, data) => {
    out[name] = err ? { error: String(err.message || err) } : data;
    resolve();
}));
(async () => {
    await step('publish', (cb) => iot.publish({ topic: 'hello/world', payload: '{"n": 1}' }, cb));
    await step('unrouted', (cb) => iot.publish({ topic: 'no/route', payload: 'x' }, cb));
    await step('rr', (cb) => lambda.invoke({ FunctionName: arn, Qualifier: '3',
        Payload: JSON.stringify({ a: 2 }) }, cb));
    await step('handled', (cb) => lambda.invoke({ FunctionName: arn + ':3',
        Payload: JSON.stringify({ fail: 'handled' }) }, cb));
    await step('event', (cb) => lambda.invoke({ FunctionName: arn + ':3', InvocationType: 'Event',
        Payload: '{}' }, cb));
    await step('secret', (cb) => sm.getSecretValue({ SecretId: 'db' }, cb));
    console.log(JSON.stringify(out));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None or not (
    NODE_COMPAT / "aws-greengrass-core-sdk").is_dir(),
    reason="needs node and aws-greengrass-core-sdk (scripts/setup-compat installs it)")
async def test_node_sdk(env: Any) -> None:
    server, invoker, _, cloud = env
    server.set_subscriptions({"up": {"id": "up", "source": ME, "subject": "hello/#",
                                     "target": "cloud"}})
    environ = dict(os.environ)
    environ.update(sdk_env(ME, TOKEN, server.port))
    environ["NODE_PATH"] = f"{shim_paths()[1]}:{NODE_COMPAT}"
    proc = await asyncio.create_subprocess_exec(
        "node", "-e", NODE_SCRIPT, env=environ, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    raw, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    out = json.loads(raw.decode().strip().splitlines()[-1])
    assert cloud.sent == [("hello/world", b'{"n": 1}', 0)]
    assert isinstance(out["publish"], str)              # the invocation id
    assert no_subscription_message(ME, "no/route") in out["unrouted"]["error"]
    assert out["rr"]["FunctionError"] == ""
    assert json.loads(out["rr"]["Payload"])["echo"] == {"a": 2}
    assert out["handled"]["FunctionError"] == "Handled"
    assert json.loads(out["handled"]["Payload"])["errorMessage"] == "bad input"
    assert isinstance(out["event"], str)
    assert json.loads(out["secret"])["SecretString"] == "hunter2"
    calls = await invoker.wait_calls(3)
    assert calls[0][0] == ECHO


async def test_queue_full_policy(env: Any) -> None:
    server, invoker, _, cloud = env
    server.set_subscriptions({
        "a": {"id": "a", "source": ME, "subject": "q", "target": SINK},
        "b": {"id": "b", "source": ME, "subject": "q", "target": "cloud"},
    })
    invoker.full.add("sink")
    url = f"http://127.0.0.1:{server.port}/2016-11-01/functions/{ROUTER_FUNCTION_ARN}"

    def headers(policy: str) -> dict[str, str]:
        ctx = {"custom": {"source": ME, "subject": "q", "queueFullPolicy": policy}}
        return {"Authorization": TOKEN, "X-Amz-Invocation-Type": "Event",
                "X-Amz-Client-Context": base64.b64encode(json.dumps(ctx).encode()).decode()}

    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=b"1", headers=headers("AllOrError")) as r:
            assert r.status == 429 and "queue of function" in await r.text()
        async with s.post(url, data=b"2", headers=headers("BestEffort")) as r:
            assert r.status == 202
    assert [p for _, p, _ in cloud.sent] == [b"1", b"2"]   # the cloud target got both
