"""Functions with real workers: pinned, on-demand, timeouts, errors, limits, reconfigure."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sprig.functions import errors
from sprig.functions.config import LambdaConfig
from sprig.functions.function import Function
from sprig.functions.invocation import FunctionErrorKind, Invocation, InvocationType
from sprig.functions.manager import FunctionManager
from sprig.functions.worker import FunctionSpec
from sprig.lambda_params import ContainerMode
from sprig.launcher.spec import ResourceLimits
from sprig.runtime_api.frames import FrameConnection

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"

APP = '''
import os, sys, time, json
count = 0
PID = os.getpid()
def handler(event, context):
    global count
    count += 1
    print("invoked", count, flush=True)
    op = event.get("op") if isinstance(event, dict) else None
    if op == "sleep":
        t0 = time.time()
        time.sleep(event["s"])
        return {"start": t0, "end": time.time(), "pid": PID}
    if op == "fail":
        raise RuntimeError("handled boom")
    if op == "exit":
        os._exit(3)
    if op == "big":
        return "x" * 6400000
    if op == "hog":
        blocks = [bytearray(1 << 20) for _ in range(200)]
        return len(blocks)
    return {"count": count, "pid": PID, "env": os.environ.get("GREETING"),
            "arn": os.environ.get("MY_FUNCTION_ARN"), "fn": context.function_name,
            "mem": context.memory_limit_in_mb, "encoding": os.environ.get("ENCODING_TYPE")}
'''


class Logs:
    """The log sink, with a way to wait for a line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._cond = asyncio.Condition()
        self._new = asyncio.Event()

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))
        self._new.set()

    async def wait_for(self, pred: Callable[[str], bool], timeout: float = 20) -> str:
        async def scan() -> str:
            seen = 0
            while True:
                for _, line in self.lines[seen:]:
                    if pred(line):
                        return line
                seen = len(self.lines)
                self._new.clear()
                await self._new.wait()
        return await asyncio.wait_for(scan(), timeout)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    d = tmp_path / "code"
    d.mkdir()
    (d / "app.py").write_text(APP)
    (tmp_path / "work").mkdir()
    return d


def make_spec(code: Path, **cfg: object) -> FunctionSpec:
    config = dataclasses.replace(LambdaConfig(container_mode=ContainerMode.NO_CONTAINER), **cfg)
    return FunctionSpec(
        component_name="comp", component_version="1.0.0", function_name="fn",
        function_version="3", function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn:3",
        runtime=PY, handler="app.handler", code_dir=code, config=config,
        work_dir=code.parent / "work", core_env={"AWS_REGION": "eu-west-1"})


@pytest.fixture
async def made() -> AsyncIterator[list[Function]]:
    fns: list[Function] = []
    yield fns
    for fn in fns:
        await fn.stop()


def inv(payload: object, **kw: object) -> Invocation:
    return Invocation(json.dumps(payload).encode(), **kw)  # type: ignore[arg-type]


async def call(fn: Function, payload: object, tail: bool = False):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(fn.invoke(inv(payload), tail), 30)


async def test_pinned_state_env_and_logs(code: Path, made: list[Function]) -> None:
    logs = Logs()
    fn = Function(make_spec(code, environment={"GREETING": "hi"}), log=logs)
    made.append(fn)
    await asyncio.wait_for(fn.start(), 30)
    assert len(fn.pool.workers) == 1                       # started with the component
    r1 = await call(fn, {})
    r2 = await call(fn, {}, tail=True)
    d1, d2 = json.loads(r1.payload), json.loads(r2.payload)
    assert (d1["count"], d2["count"]) == (1, 2) and d1["pid"] == d2["pid"]
    assert d1["env"] == "hi" and d1["arn"].endswith(":fn:3") and d1["fn"] == "fn"
    assert d1["mem"] == "16" and d1["encoding"] == "json"
    assert r1.ok and r1.executed_version == "3"
    (worker,) = fn._workers.values()           # Sprig's Python runtime: the framed lane
    assert worker.session._conns
    assert all(isinstance(c, FrameConnection) for c in worker.session._conns)
    assert worker.session.address == "" and worker.session._server is None   # and no port
    tail = r2.log_tail.decode()
    assert f"START RequestId: {r2.request_id}" in tail and "invoked 2" in tail
    assert "REPORT RequestId" in tail and "Max Memory Used" in tail
    assert "Init Duration" not in tail                      # warm
    assert any("Init Duration" in line and r1.request_id in line for _, line in logs.lines)
    assert ("stdout", "invoked 1") in logs.lines
    assert any(line.startswith(f"END RequestId: {r1.request_id}") for _, line in logs.lines)


async def test_pinned_init_error(code: Path, made: list[Function]) -> None:
    fn = Function(dataclasses.replace(make_spec(code), handler="nope.handler"))
    made.append(fn)
    with pytest.raises(errors.FunctionInitError) as e:
        await asyncio.wait_for(fn.start(), 30)
    assert e.value.error_type == "Runtime.ImportModuleError" and "nope" in str(e.value)


async def test_on_demand_overlap_up_to_max_instances(code: Path, made: list[Function]) -> None:
    fn = Function(make_spec(code, pinned=False, max_instances=3))
    made.append(fn)
    await fn.start()
    assert not fn.pool.workers                              # no process until work arrives
    results = await asyncio.wait_for(asyncio.gather(
        *(fn.invoke(inv({"op": "sleep", "s": 0.4})) for _ in range(6))), 60)
    spans = [json.loads(r.payload) for r in results]
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    assert peak == 3, spans
    assert len({s["pid"] for s in spans}) == 3             # warm workers were reused


async def test_idle_workers_are_reaped(code: Path, made: list[Function]) -> None:
    logs = Logs()
    fn = Function(make_spec(code, pinned=False, max_idle_s=0.3), log=logs)
    made.append(fn)
    await fn.start()
    r = await call(fn, {})
    assert r.ok and len(fn.pool.workers) == 1
    await logs.wait_for(lambda line: line.startswith("stopping worker") and "idle" in line)
    await logs.wait_for(lambda line: line.endswith(" stopped"))
    assert not fn.pool.workers
    r2 = await call(fn, {})                                  # a new cold worker
    assert json.loads(r2.payload)["pid"] != json.loads(r.payload)["pid"]


async def test_timeout_kills_and_recovers(code: Path, made: list[Function]) -> None:
    fatal: list[str] = []
    fn = Function(make_spec(code, timeout_s=0.5), on_fatal=fatal.append)
    made.append(fn)
    await fn.start()
    first = json.loads((await call(fn, {})).payload)["pid"]
    r = await call(fn, {"op": "sleep", "s": 10})
    assert r.function_error is FunctionErrorKind.UNHANDLED
    doc = json.loads(r.payload)
    assert doc["errorType"] == "Sandbox.Timeout"
    assert "Task timed out after 0.50 seconds" in doc["errorMessage"]
    assert fatal and "timed out" in fatal[0]                 # pinned → the kernel is told
    with pytest.raises(OSError):
        os.kill(first, 0)                                    # the worker was killed
    await fn.stop()
    await fn.start()                                         # the kernel's restart
    assert json.loads((await call(fn, {})).payload)["pid"] != first


async def test_on_demand_timeout_gives_fresh_worker(code: Path, made: list[Function]) -> None:
    fn = Function(make_spec(code, pinned=False, timeout_s=0.5))
    made.append(fn)
    await fn.start()
    first = json.loads((await call(fn, {})).payload)["pid"]
    r = await call(fn, {"op": "sleep", "s": 10})
    assert json.loads(r.payload)["errorType"] == "Sandbox.Timeout"
    assert json.loads((await call(fn, {})).payload)["pid"] != first


async def test_errors_handled_crash_and_oversize(code: Path, made: list[Function]) -> None:
    fn = Function(make_spec(code, pinned=False))
    made.append(fn)
    await fn.start()
    r = await call(fn, {"op": "fail"})
    assert r.function_error is FunctionErrorKind.HANDLED
    doc = json.loads(r.payload)
    assert (doc["errorType"], doc["errorMessage"]) == ("RuntimeError", "handled boom")
    assert any("raise RuntimeError" in line for line in doc["stackTrace"])
    r = await call(fn, {"op": "exit"})
    assert r.function_error is FunctionErrorKind.UNHANDLED
    doc = json.loads(r.payload)
    assert doc["errorType"] == "Runtime.ExitError" and "exited with code 3" in doc["errorMessage"]
    r = await call(fn, {"op": "big"})
    doc = json.loads(r.payload)
    assert r.function_error is FunctionErrorKind.UNHANDLED
    assert doc["errorType"] == "Function.ResponseSizeTooLarge"
    assert (await call(fn, {})).ok                           # recovered


async def test_pinned_crash_calls_on_fatal(code: Path, made: list[Function]) -> None:
    fatal: list[str] = []
    fn = Function(make_spec(code), on_fatal=fatal.append)
    made.append(fn)
    await fn.start()
    r = await call(fn, {"op": "exit"})
    assert json.loads(r.payload)["errorType"] == "Runtime.ExitError"
    assert fatal and "exited with code 3" in fatal[0]


async def test_queue_full_and_limits(code: Path, made: list[Function]) -> None:
    logs = Logs()
    fn = Function(make_spec(code, max_queue_size=1), log=logs)
    made.append(fn)
    await fn.start()
    running = asyncio.ensure_future(fn.invoke(inv({"op": "sleep", "s": 1})))
    await logs.wait_for(lambda line: line.startswith("START RequestId"))
    queued = asyncio.ensure_future(fn.invoke(inv({})))
    await logs.wait_for(lambda _: len(fn.pool.queue) == 1)
    with pytest.raises(errors.QueueFull):
        await fn.invoke(inv({}))
    with pytest.raises(errors.QueueFull):
        fn.submit(inv({}))             # the task-less entrance refuses alike, at once
    with pytest.raises(errors.QueueFull):
        await fn.invoke(inv({}, invocation_type=InvocationType.EVENT))
    assert fn.event_drops == 1 and fn.pool.dropped == 3
    det = fn.details()
    assert det["droppedEvents"] == 1 and det["queued"] == 1 and det["pinned"] is True
    assert json.dumps(det)
    assert any("dropped event" in line for _, line in logs.lines)
    assert (await asyncio.wait_for(running, 30)).ok and (await asyncio.wait_for(queued, 30)).ok
    with pytest.raises(errors.PayloadTooLarge):
        await fn.invoke(Invocation(b"x" * (256 * 1024 + 1), InvocationType.EVENT))
    with pytest.raises(errors.PayloadTooLarge):
        await fn.invoke(Invocation(b"x" * (6 * 1024 * 1024 + 1)))
    with pytest.raises(errors.PayloadTooLarge):
        fn.submit(Invocation(b"x" * (6 * 1024 * 1024 + 1)))
    with pytest.raises(ValueError, match="submit takes RequestResponse invocations, not Event"):
        fn.submit(inv({}, invocation_type=InvocationType.EVENT))
    r = await fn.invoke(inv({}, invocation_type=InvocationType.DRY_RUN))
    assert r.ok and r.payload == b""
    submitted = fn.submit(inv({"op": "echo"}))
    assert (await asyncio.wait_for(submitted, 30)).ok
    await fn.stop()
    with pytest.raises(errors.FunctionNotRunnable):
        fn.submit(inv({}))


async def test_reconfigure_restarts_workers(code: Path, made: list[Function]) -> None:
    fn = Function(make_spec(code, environment={"GREETING": "one"}))
    made.append(fn)
    await fn.start()
    d = json.loads((await call(fn, {})).payload)
    assert d["env"] == "one"
    await asyncio.wait_for(fn.reconfigure(make_spec(code, environment={"GREETING": "two"})), 30)
    d2 = json.loads((await call(fn, {})).payload)
    assert d2["env"] == "two" and d2["pid"] != d["pid"] and d2["count"] == 1
    await fn.reconfigure(make_spec(code, environment={"GREETING": "two"}, timeout_s=9))
    d3 = json.loads((await call(fn, {})).payload)
    assert d3["pid"] == d2["pid"]                            # a timeout change keeps workers


async def test_awslambdaric_as_provided_bootstrap(code: Path, made: list[Function]) -> None:
    boot = code / "bootstrap"
    boot.write_text(f'#!/bin/sh\ncd "$LAMBDA_TASK_ROOT"\nexec {sys.executable} -m awslambdaric '
                    '"$_HANDLER"\n')
    boot.chmod(0o755)
    fn = Function(dataclasses.replace(make_spec(code), runtime="provided.al2"))
    made.append(fn)
    await asyncio.wait_for(fn.start(), 30)
    d = json.loads((await call(fn, {})).payload)
    assert d["count"] == 1 and d["fn"] == "fn"
    r = await call(fn, {"op": "fail"})
    assert r.function_error is FunctionErrorKind.HANDLED
    assert json.loads(r.payload)["errorType"] == "RuntimeError"
    assert json.loads((await call(fn, {})).payload)["count"] == 3


def _memory_cgroup_usable() -> bool:
    from sprig.launcher.process import default_driver
    return default_driver() is not None


@pytest.mark.skipif(not _memory_cgroup_usable(), reason="no writable memory cgroup here")
async def test_out_of_memory(code: Path, made: list[Function]) -> None:
    spec = dataclasses.replace(make_spec(code, pinned=False),
                               system_limits=ResourceLimits(memory_kb=64 * 1024))
    fn = Function(spec)
    made.append(fn)
    await fn.start()
    r = await call(fn, {"op": "hog"})
    doc = json.loads(r.payload)
    assert r.function_error is FunctionErrorKind.UNHANDLED
    assert doc["errorType"] == "Runtime.OutOfMemory" and "65536 KB" in doc["errorMessage"]
    assert (await call(fn, {})).ok


async def test_manager_finds_functions(code: Path, made: list[Function]) -> None:
    fn = Function(make_spec(code, pinned=False))
    made.append(fn)
    await fn.start()
    m = FunctionManager()
    m.add(fn)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    for name in ("comp", "fn", "fn:3", "fn:$LATEST", arn, f"{arn}:3", f"{arn}:$LATEST"):
        assert m.find(name) is fn, name
    for bad in ("other", "fn:4", f"{arn}:4", "arn:aws:lambda:us-east-1:1:function:x"):
        with pytest.raises(errors.FunctionNotFound):
            m.find(bad)
    r = await asyncio.wait_for(m.invoke("fn", inv({})), 30)
    assert r.ok


CONTAINER_APP = '''
import os
def handler(event, context):
    if event.get("op") == "hog":
        blocks = [bytearray(1 << 20) for _ in range(200)]
        return len(blocks)
    try:
        open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "x"), "w")
        writable = True
    except OSError:
        writable = False
    open("scratch", "w").write("ok")            # the work dir (cwd) is writable
    return {"code_writable": writable, "cwd": os.getcwd()}
'''


def _sandbox_usable() -> bool:
    import shutil
    return shutil.which("bwrap") is not None and _memory_cgroup_usable()


@pytest.mark.skipif(not _sandbox_usable(), reason="needs bubblewrap and a memory cgroup")
async def test_greengrass_container_16mb(code: Path, made: list[Function]) -> None:
    (code / "app.py").write_text(CONTAINER_APP)
    spec = make_spec(code, container_mode=ContainerMode.GREENGRASS_CONTAINER)
    assert spec.config.memory_kb == 16384
    fn = Function(spec)
    made.append(fn)
    await asyncio.wait_for(fn.start(), 30)              # our runtime fits in 16 MB
    d = json.loads((await call(fn, {})).payload)
    assert d == {"code_writable": False, "cwd": str(code.parent / "work")}
    r = await call(fn, {"op": "hog"})
    doc = json.loads(r.payload)
    assert doc["errorType"] == "Runtime.OutOfMemory" and "16384 KB" in doc["errorMessage"]
    assert (await call(fn, {})).ok


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("pinned", [True, False])
async def test_stop_during_start_leaves_no_process(code: Path, pinned: bool) -> None:
    import uuid
    marker = f"MARKER_{uuid.uuid4().hex}"
    fn = Function(make_spec(code, pinned=pinned, environment={marker: "1"}))
    if pinned:
        starting = asyncio.ensure_future(fn.start())
    else:
        await fn.start()
        starting = asyncio.ensure_future(fn.invoke(inv({})))
    await asyncio.sleep(0)                 # let the start begin (not a wait for a condition)
    await asyncio.sleep(0)
    await fn.stop()
    with pytest.raises((asyncio.CancelledError, errors.FunctionError)):
        await asyncio.wait_for(starting, 10)
    assert _processes_with(marker) == []


def _user_exists(name: str) -> bool:
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return os.geteuid() == 0


@pytest.mark.skipif(not _user_exists("sprig_user"),
                    reason="needs root and the sprig_user account (scripts/setup creates it)")
@pytest.mark.parametrize("mode", [ContainerMode.NO_CONTAINER, ContainerMode.GREENGRASS_CONTAINER])
async def test_runs_as_the_run_as_user(mode: ContainerMode) -> None:
    import pwd
    import shutil
    import tempfile

    from sprig.run_as import RunAs

    if mode is ContainerMode.GREENGRASS_CONTAINER and not _sandbox_usable():
        pytest.skip("needs bubblewrap and a memory cgroup")
    base = Path(tempfile.mkdtemp(prefix="sprig-fn-test-"))
    try:
        base.chmod(0o755)
        code = base / "code"
        code.mkdir()
        (code / "app.py").write_text(
            "import os\ndef handler(e, c):\n    return {'uid': os.getuid()}\n")
        work = base / "work"
        work.mkdir()
        uid = pwd.getpwnam("sprig_user").pw_uid
        os.chown(work, uid, -1)
        spec = dataclasses.replace(make_spec(code, container_mode=mode, memory_kb=65536),
                                   work_dir=work, run_as=RunAs("sprig_user", "sprig_group"))
        fn = Function(spec)
        try:
            await asyncio.wait_for(fn.start(), 30)
            assert json.loads((await call(fn, {})).payload) == {"uid": uid}
        finally:
            await fn.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
