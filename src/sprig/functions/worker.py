"""One function worker: its spec, its environment, and a process talking to its own Runtime API.

:class:`FunctionSpec` is what the kernel knows about a Lambda component; :func:`worker_env` and
:func:`launch_spec` turn it into the exact environment (Lambda's and Greengrass's variables) and
:class:`~sprig.launcher.spec.LaunchSpec` of a worker; :class:`Worker` runs one process with one
:class:`~sprig.runtime_api.RuntimeSession` and reports how each invocation ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sprig.functions.config import LambdaConfig
from sprig.functions.runtimes import ResolvedRuntime, resolve
from sprig.lambda_params import ContainerMode
from sprig.launcher import users
from sprig.launcher.process import ExitStatus, LaunchedProcess, spawn
from sprig.launcher.registry import REGISTRY, Refusals, peer_in
from sprig.launcher.spec import LaunchSpec, Mount, ResourceLimits
from sprig.run_as import RunAs
from sprig.runtime_api import Job, Outcome, RuntimeSession, SessionAborted, wire

ROUTER_FUNCTION_ARN = "arn:aws:lambda:::function:GGRouter"
SHADOW_FUNCTION_ARN = "arn:aws:lambda:::function:GGShadowService"
SECRETS_MANAGER_FUNCTION_ARN = "arn:aws:lambda:::function:GGSecretManager:1"
GGC_MAX_INTERFACE_VERSION = "1.5"

security_log = logging.getLogger("sprig.security")


@dataclass(frozen=True)
class FunctionSpec:
    """A deployed Lambda component, as the Lambda manager needs it.

    ``function_arn`` is the versioned ARN (``arn:aws:lambda:r:acct:function:name:3``);
    ``core_env`` holds what the core gives every component (``AWS_IOT_THING_NAME``,
    ``AWS_REGION``, ``SVCUID``, ``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT``...).
    """

    component_name: str
    component_version: str
    function_name: str
    function_version: str
    function_arn: str
    runtime: str
    handler: str
    code_dir: Path
    config: LambdaConfig
    work_dir: Path
    exec_args: tuple[str, ...] = ()
    run_as: RunAs | None = None
    core_env: Mapping[str, str] = field(default_factory=dict)
    system_limits: ResourceLimits = field(default_factory=ResourceLimits)
    cache_dir: Path | None = None   # the root's cache (Java's runtime jar); None: from work_dir
    #: GreengrassContainer: the host uid of its sandboxes (see LaunchSpec.sandbox_uid)
    sandbox_uid: int | None = None
    #: where the workers' Runtime API sockets go (RootLayout.runtime_sockets); None: /tmp
    socket_root: Path | None = None

    def memory_mb(self) -> int:
        """The memory a worker may use, in MB (0: no limit)."""
        if self.config.container_mode is ContainerMode.GREENGRASS_CONTAINER:
            return max(1, self.config.memory_kb // 1024)
        return (self.system_limits.memory_kb or 0) // 1024

    def resolve_runtime(self, *, build_jar: bool = True) -> ResolvedRuntime:
        """:func:`~sprig.functions.runtimes.resolve` for this function (ValidationError);
        ``build_jar=False`` checks Java without compiling its runtime jar (deployment checks
        run on the event loop)."""
        cache = self.cache_dir
        if cache is None and self.work_dir.parent.name == "work":
            cache = self.work_dir.parent.parent / "cache"     # RootLayout: <root>/work/<name>
        return resolve(self.runtime, self.code_dir, handler=self.handler,
                       memory_mb=self.memory_mb(), cache_dir=cache, build_jar=build_jar)

    @property
    def unversioned_arn(self) -> str:
        head, _, last = self.function_arn.rpartition(":")
        return head if last == self.function_version else self.function_arn


def worker_env(spec: FunctionSpec, runtime: ResolvedRuntime, worker_id: str,
               runtime_api: str, runtime_socket: str | None = None) -> dict[str, str]:
    """The worker's environment: the function's own variables, then the core's, then Lambda's
    and Greengrass's reserved ones (which the function cannot override, as in AWS)."""
    cfg = spec.config
    region = spec.core_env.get("AWS_REGION", "us-east-1")
    interpreter_dir = str(Path(runtime.argv[0]).parent) if runtime.argv else ""
    path = ":".join(p for p in (interpreter_dir, "/usr/local/bin", "/usr/bin", "/bin") if p)
    runtime_dir = str(runtime.read_only_paths[-1]) if runtime.read_only_paths else ""
    stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[{spec.function_version}]{worker_id}"
    env: dict[str, str] = {"PATH": path, "LANG": "en_US.UTF-8", "TZ": ":UTC",
                           "HOME": str(spec.work_dir)}
    env.update(cfg.environment)
    env.update(spec.core_env)
    env.update(runtime.env)
    for var in SEARCH_PATH_VARS:     # module search paths add up instead of replacing
        joined = _join_paths(runtime.env.get(var), cfg.environment.get(var),
                             spec.core_env.get(var))
        if joined:
            env[var] = joined
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(max(1, cfg.memory_kb // 1024)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": spec.core_env.get("AWS_DEFAULT_REGION", region),
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "LAMBDA_RUNTIME_DIR": runtime_dir,
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "MY_FUNCTION_ARN": spec.function_arn,
        "AWS_GREENGRASS_LAMBDA_ARN": spec.function_arn,
        "AWS_GREENGRASS_LAMBDA_FUNCTION_HANDLER": spec.handler,
        "AWS_GREENGRASS_LAMBDA_RUNTIME": spec.runtime,
        "AWS_GREENGRASS_LAMBDA_ARTIFACT_PATH": str(spec.code_dir),
        "AWS_GREENGRASS_LAMBDA_CONTAINER_MODE": cfg.container_mode.value,
        "AWS_GREENGRASS_LAMBDA_CONTAINER_PARAMS": json.dumps({
            "devices": {str(i): {"path": d.path, "permission": "rw" if d.writable else "ro",
                                 "addGroupOwner": d.add_group_owner}
                        for i, d in enumerate(cfg.devices)},
            "memorySize": cfg.memory_kb, "mountROSysfs": cfg.mount_ro_sysfs,
            "volumes": {str(i): {"sourcePath": v.source_path,
                                 "destinationPath": v.destination_path,
                                 "permission": "rw" if v.writable else "ro",
                                 "addGroupOwner": v.add_group_owner}
                        for i, v in enumerate(cfg.volumes)}}),
        "AWS_GREENGRASS_LAMBDA_PARAMS": json.dumps({"EnvironmentVariables": cfg.environment}),
        "AWS_GREENGRASS_LAMBDA_EXEC_ARGS": json.dumps(
            [spec.runtime, *runtime.argv[1:], f"--handler={spec.handler}", *spec.exec_args]),
        "AWS_GREENGRASS_LAMBDA_STATUS_TIMEOUT_SECONDS": f"{cfg.status_timeout_s:g}",
        "AWS_GREENGRASS_LAMBDA_ENCODING_TYPE": cfg.encoding.value,
        "ENCODING_TYPE": cfg.encoding.value,
        "AWS_GREENGRASS_LAMBDA_WORKER_ID": worker_id,
        "GGC_MAX_INTERFACE_VERSION": GGC_MAX_INTERFACE_VERSION,
        "ROUTER_FUNCTION_ARN": ROUTER_FUNCTION_ARN,
        "SHADOW_FUNCTION_ARN": SHADOW_FUNCTION_ARN,
        "SECRETS_MANAGER_FUNCTION_ARN": SECRETS_MANAGER_FUNCTION_ARN,
    })
    if runtime_api:
        env["AWS_LAMBDA_RUNTIME_API"] = runtime_api
    else:                            # a runtime that only speaks the Unix socket: no port
        env.pop("AWS_LAMBDA_RUNTIME_API", None)
    if runtime_socket is not None:
        env[wire.ENV_UNIX_SOCKET] = runtime_socket
    if spec.run_as is not None:
        env["AWS_GREENGRASS_LAMBDA_LINUX_PROCESS_PARAMS"] = json.dumps(
            {"user": spec.run_as.user, "group": spec.run_as.group or spec.run_as.user})
    return env


SEARCH_PATH_VARS = ("PYTHONPATH", "NODE_PATH")


def _join_paths(*values: str | None) -> str:
    out: list[str] = []
    for value in values:
        for entry in (value or "").split(":"):
            if entry and entry not in out:
                out.append(entry)
    return ":".join(out)


def _visible_paths(env: Mapping[str, str], mounted: tuple[Path, ...]) -> tuple[Path, ...]:
    """Directories the environment points the runtime at (module search paths, the Node shims)
    that a container must also see, read-only, unless already under a mounted path."""
    extra: list[Path] = []
    for var in (*SEARCH_PATH_VARS, "SPRIG_NODE_SHIMS"):
        for entry in env.get(var, "").split(":"):
            p = Path(entry)
            if (not p.is_absolute() or not p.exists() or p in extra
                    or any(p == m or m in p.parents for m in mounted)):
                continue
            extra.append(p)
    return tuple(extra)


def cgroup_name(component: str, worker_id: str, instance: str) -> str:
    """``<component>-<n>-<instance>``: ``instance`` is random per worker, because worker
    numbers restart with each Function and several cores (tests, restarts with stragglers)
    may share the cgroup hierarchy."""
    number = worker_id.rsplit("-", 1)[-1]
    return f"{component[:128]}-{number}-{instance}"


def launch_spec(spec: FunctionSpec, runtime: ResolvedRuntime, worker_id: str,
                runtime_api: str, runtime_socket: str | None = None,
                instance: str = "0") -> LaunchSpec:
    """The LaunchSpec of one worker; the launcher does the sandbox (GreengrassContainer)."""
    cfg = spec.config
    container = cfg.container_mode is ContainerMode.GREENGRASS_CONTAINER
    ephemeral = container and cfg.ephemeral_storage_kb is not None
    socket_dir = (Path(runtime_socket).parent,) if runtime_socket else ()
    env = worker_env(spec, runtime, worker_id, runtime_api, runtime_socket)
    mounted = (spec.code_dir, *runtime.read_only_paths, *socket_dir)
    # The Greengrass IPC v2 socket, so awsiotsdk works inside the container too.
    ipc = env.get("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")
    ipc_socket = (Path(ipc),) if container and ipc and Path(ipc).exists() else ()
    return LaunchSpec(
        argv=(*runtime.argv, *spec.exec_args),
        env=env,
        cwd=spec.work_dir,
        run_as=spec.run_as,
        container_mode=cfg.container_mode,
        limits=ResourceLimits(memory_kb=cfg.memory_kb) if container else spec.system_limits,
        read_only_paths=(*mounted, *_visible_paths(env, mounted)) if container else (),
        writable_paths=((*ipc_socket,) if ephemeral else (spec.work_dir, *ipc_socket))
        if container else (),
        ephemeral_storage_kb=cfg.ephemeral_storage_kb if container else None,
        ephemeral_paths=(spec.work_dir,) if ephemeral else (),
        volumes=tuple(Mount(Path(v.source_path), Path(v.destination_path), v.writable,
                            v.add_group_owner) for v in cfg.volumes) if container else (),
        devices=tuple(Mount(Path(d.path), Path(d.path), d.writable, d.add_group_owner)
                      for d in cfg.devices) if container else (),
        mount_ro_sysfs=cfg.mount_ro_sysfs and container,
        cgroup_name=cgroup_name(spec.component_name, worker_id, instance),
        owner=spec.component_name,
        sandbox_uid=spec.sandbox_uid if container else None,
    )


def _only_from(process: LaunchedProcess, label: str) -> Callable[[socket.socket], bool]:
    """The Runtime API's peer check: only the worker's own processes may connect. Refusals go
    to the core log (sprig.security) with the peer's identity, a few lines per peer."""
    refusals = Refusals()

    def check(sock: socket.socket) -> bool:
        ok, peer = peer_in(sock, process)
        if not ok:
            n = refusals.count(peer.uid if peer is not None else None)
            if n is not None:
                who = REGISTRY.describe(peer) if peer is not None else "an unknown peer"
                security_log.warning("Runtime API of %s refused a connection from %s "
                                     "(refusal %d)", label, who, n)
        return ok

    return check


class WorkerTimeout(Exception):
    """The invocation ran past its deadline; the worker must be killed."""


class WorkerExited(Exception):
    """The worker's process ended (crash, OOM kill, exit) while it had work or during init."""

    def __init__(self, status: ExitStatus | None, init_error: str | None = None) -> None:
        self.status = status
        self.init_error = init_error
        super().__init__(init_error or (status.describe() if status else "the worker is gone"))


OutputSink = Callable[[str, str, str], None]     # (worker_id, stream, line)


class Worker:
    """One process + its Runtime API session. Create with :meth:`start`."""

    def __init__(self, worker_id: str, session: RuntimeSession, process: LaunchedProcess,
                 ) -> None:
        self.id = worker_id
        self.session = session
        self.process = process
        self.stopping = False
        self.init_ms: float | None = None      # set after init, cleared by the first REPORT
        self._peak: int | None = None
        self._peak_at = -1.0
        self._exit: asyncio.Task[ExitStatus] = asyncio.ensure_future(process.wait())

    @classmethod
    async def start(cls, spec: FunctionSpec, runtime: ResolvedRuntime, worker_id: str, *,
                    on_output: OutputSink, log: Callable[[str], None],
                    socket_dir: Path | None = None) -> Worker:
        """Open a session, spawn the process (raises LaunchError).

        With ``socket_dir`` the session also listens on ``<socket_dir>/<hash>.sock``
        (owned by the run-as user; the name is a hash of the worker id) for Sprig's own runtimes.
        """
        # A short name: sun_path holds 108 bytes and component names may have 128.
        short = hashlib.sha1(worker_id.encode()).hexdigest()[:16]
        unix_path = str(socket_dir / f"{short}.sock") if socket_dir else None
        owner = None
        if unix_path is not None:
            creds = users.credentials_for(spec.run_as)
            if creds is not None:
                container = spec.config.container_mode is ContainerMode.GREENGRASS_CONTAINER
                uid = spec.sandbox_uid if container and spec.sandbox_uid is not None \
                    else creds.uid
                owner = (uid, creds.gid)
        session = await RuntimeSession.open(log=log, unix_path=unix_path, unix_owner=owner,
                                            guarded=True,
                                            tcp=runtime.needs_tcp or unix_path is None)
        lspec = launch_spec(spec, runtime, worker_id, session.address, unix_path,
                            secrets.token_hex(4))

        def output(stream: str, line: bytes) -> None:
            on_output(worker_id, stream, line.decode("utf-8", "replace"))

        spawning = asyncio.ensure_future(spawn(lspec, on_output=output))
        try:
            # Shielded: if our caller is cancelled mid-spawn, the process must not leak.
            process = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await (await spawning).aclose(0.0)
            await session.aclose()
            raise
        except BaseException:
            await session.aclose()
            raise
        session.bind(_only_from(process, f"{spec.component_name} ({worker_id})"))
        return cls(worker_id, session, process)

    @property
    def exited(self) -> asyncio.Task[ExitStatus]:
        return self._exit

    async def wait_ready(self, timeout: float) -> None:
        """Wait for init (first /next). Raises WorkerExited with the init error or exit reason,
        or TimeoutError."""
        ready = asyncio.ensure_future(self.session.wait_ready(timeout))
        waiting: set[asyncio.Future[Any]] = {ready, self._exit}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            try:
                ready.result()
                return
            except TimeoutError:
                raise
            except Exception as e:          # InitFailedError
                status = await self._wait_exit(2.0)
                raise WorkerExited(status, str(e)) from None
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ready
        status = self._exit.result()
        init = self.session.init_error
        raise WorkerExited(status, str(init) if init else None)

    async def _wait_exit(self, timeout: float) -> ExitStatus | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(self._exit), timeout)
        return None

    def dispatch(self, job: Job, timeout: float,
                 on_done: Callable[[Outcome | BaseException], None]) -> None:
        """Hand ``job`` to the worker; ``on_done`` gets (exactly once, from the event loop) the
        :class:`Outcome`, or :class:`WorkerTimeout` past ``timeout`` seconds, or
        :class:`WorkerExited` if the process ended first. Callbacks, not a task: this is the
        hot path of every invocation."""
        loop = asyncio.get_running_loop()
        done: list[bool] = []

        def finish(result: Outcome | BaseException) -> None:
            if done:
                return
            done.append(True)
            timer.cancel()
            self._exit.remove_done_callback(on_exit)
            on_done(result)

        def on_answer(answer: Outcome | SessionAborted) -> None:
            if isinstance(answer, SessionAborted):
                # Aborted by stop() or a dead process: report how the process ended.
                self._exit.add_done_callback(lambda t: finish(WorkerExited(t.result())))
            else:
                finish(answer)

        def on_timeout() -> None:
            finish(WorkerTimeout())
            self.session.abort("the invocation timed out")

        def on_exit(t: asyncio.Task[ExitStatus]) -> None:
            finish(WorkerExited(t.result()))
            self.session.abort("the worker exited")

        try:
            self.session.submit_with(job, on_answer)
        except SessionAborted:
            self._exit.add_done_callback(lambda t: on_done(WorkerExited(t.result())))
            return
        timer = loop.call_later(timeout, on_timeout)
        self._exit.add_done_callback(on_exit)

    async def run(self, job: Job, timeout: float) -> Outcome:
        """:meth:`dispatch` as a coroutine. Raises WorkerTimeout or WorkerExited."""
        fut: asyncio.Future[Outcome | BaseException] = asyncio.get_running_loop().create_future()

        def done(r: Outcome | BaseException) -> None:
            if not fut.done():
                fut.set_result(r)

        self.dispatch(job, timeout, done)
        result = await fut
        if isinstance(result, BaseException):
            raise result
        return result

    async def output_taken(self) -> None:
        """Return once every line the worker has written so far reached ``on_output``."""
        await self.process.output_taken()

    def memory_peak_kb(self) -> int | None:
        """Peak memory of the worker (its cgroup, else the process's VmHWM).

        Read at most every 100 ms: it costs a file read (tens of µs) on the hot path, and the
        REPORT line's "Max Memory Used" is a high-water mark, so a slightly older reading is
        still a true lower bound.
        """
        now = time.monotonic()
        if now - self._peak_at < 0.1:
            return self._peak
        self._peak_at = now
        self._peak = self._read_peak_kb()
        return self._peak

    def _read_peak_kb(self) -> int | None:
        peak = self.process.memory_peak_kb()
        if peak is not None:
            return peak
        try:
            with open(f"/proc/{self.process.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    async def stop(self, grace_s: float = 2.0) -> ExitStatus:
        """Stop the process tree and close the session."""
        self.stopping = True
        self.session.abort("the worker is stopping")
        try:
            return await self.process.aclose(grace_s)
        finally:
            await self.session.aclose()
