"""``sprig core run``: wire every part together and run until a signal.

Start-up order: root directory and lock → settings → state database → kernel (with the Lambda
manager) → management socket and invoke API → the desired components from the database (so a
restarted core returns to its previous state, with no network at all) → the deployment queue.
The first SIGTERM/SIGINT stops everything gracefully (dependents first); a second one exits at
once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

from sprig import __version__, assets
from sprig.config.visibility import SECRET_MANAGER, redact_secrets
from sprig.core.ipc_adapter import KernelIpcCore
from sprig.core.kernel import Kernel
from sprig.core.lambda_service import FunctionHook, LambdaService, validate_lambda
from sprig.core.messaging import CoreMessaging
from sprig.deployment.planner import Planner
from sprig.deployment.request import DeploymentRequest
from sprig.deployment.service import DeploymentService
from sprig.errors import SprigError, ValidationError
from sprig.functions.invocation import Invocation, InvocationType
from sprig.functions.manager import FunctionManager
from sprig.ipc.server import IpcServer
from sprig.launcher.capabilities import check_device, require_container_support
from sprig.launcher.process import set_cgroup_prefix, sweep_own_cgroups
from sprig.local_api.credentials import ensure_credentials
from sprig.local_api.invoke_api import start_invoke_api
from sprig.local_api.management import ManagementServer
from sprig.log_ratelimit import RateLimitHandler, loop_exception_handler
from sprig.logs import CoreLogHandler
from sprig.paths import RootLayout
from sprig.settings import CoreSettings
from sprig.state.db import StateDB

log = logging.getLogger("sprig.core")


class Core:
    """The running core: every long-lived part, and the management API's methods."""

    def __init__(self, layout: RootLayout, settings: CoreSettings) -> None:
        import hashlib

        # This core's cgroups are named r<digest of the root>-…: see set_cgroup_prefix.
        set_cgroup_prefix("r" + hashlib.sha256(str(layout.root).encode()).hexdigest()[:8] + "-")
        self.layout = layout
        self.settings = settings
        self.db = StateDB(layout.state_db)
        self.kernel = Kernel(layout, settings, self.db)
        self.functions = FunctionManager()
        self.function_hooks: list[FunctionHook] = []
        self.planner = Planner(layout, self.db, self.kernel.platform)
        self.deployments = DeploymentService(self.kernel, self.planner, self.db)
        self.api = ManagementServer(layout.management_socket)
        self.messaging = CoreMessaging(self.kernel, self.functions)
        self.function_hooks.append(self.messaging.function_changed)
        self.kernel.lambda_env_providers.append(self.messaging.function_env)
        self.ipc = IpcServer(layout.ipc_socket,
                             KernelIpcCore(self.kernel, self.messaging.bus, self.messaging.bridge,
                                           self.messaging.messaging.deployed_shadows))
        self.endpoints: dict[str, str] = {}
        self.started = time.time()
        self._device_report: Any = None
        self.kernel.register_factory(
            "aws.greengrass.lambda",
            lambda kernel, comp: LambdaService(kernel, comp, self.functions, self.function_hooks))
        self.planner.validators["aws.greengrass.lambda"] = self._validate_lambda
        self.planner.validators.setdefault("aws.greengrass.generic",
                                           self.messaging.validate_builtin)
        self.planner.owner_for = self._artifact_owner
        self.planner.check_run_as = self._check_run_as
        self.fleet: Any = None
        if settings.fleet is not None and self.messaging.bridge is not None:
            from sprig.fleet.agent import FleetAgent  # only on fleet devices (memory)

            self.fleet = FleetAgent(settings.fleet, self.kernel, self.deployments,
                                    self.messaging.bridge)
        self._register_methods()

    def _check_container(self, memory_kb: int) -> None:
        if self._device_report is None:
            self._device_report = check_device()
        require_container_support(need_memory_limit=True, report=self._device_report)

    def _artifact_owner(self, record: Any) -> tuple[int, int] | None:
        """Artifacts belong to whoever runs the component (Permission OWNER means them): its
        run-as user, or its sandbox uid."""
        from sprig.core.component import load_component
        from sprig.core.lambda_service import process_owner

        return process_owner(self.kernel, load_component(record, self.kernel.platform))

    def _check_run_as(self, record: Any) -> None:
        from sprig.core.component import load_component
        from sprig.errors import LaunchError
        from sprig.launcher.users import credentials_for

        comp = load_component(record, self.kernel.platform)
        for privileged in (False, True):
            run_as = self.kernel.run_as_for(comp, privileged=privileged)
            try:
                credentials_for(run_as)
            except LaunchError as e:
                where = "runWith" if record.run_with else "runWithDefault (config.yaml)"
                raise ValidationError(f"{record.name}.{where}.posixUser", str(e),
                                      value=str(run_as),
                                      allowed="an existing user[:group]; `scripts/setup` "
                                      "creates sprig_user:sprig_group") from None

    def _validate_lambda(self, record: Any, recipe: Any) -> None:
        validate_lambda(record, recipe, self.layout, self.kernel.platform, self._check_container)

    # -- run -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        assets.publish(self.layout.root)
        await self.messaging.start()
        await self.ipc.start()
        credentials = ensure_credentials(self.layout.credentials)
        runner, url = await start_invoke_api(self.functions, credentials,
                                             port=self.settings.invoke_api_port,
                                             region=self.settings.region)
        self.endpoints["lambda"] = url
        self.endpoints["management"] = f"unix://{self.layout.management_socket}"
        self.endpoints["ipc"] = f"unix://{self.layout.ipc_socket}"
        self.endpoints["sdk_v1"] = f"http://127.0.0.1:{self.messaging.messaging.sdk_ipc.port}"
        self._write_endpoints()
        log.info("Sprig %s core on %s; invoke API %s", __version__, self.layout.root, url)
        self._check_root_reachable()
        try:
            self.kernel.children.reap_orphans()
            swept = await asyncio.to_thread(sweep_own_cgroups)
            if swept:
                log.warning("removed %d cgroup(s) left by a previous core", swept)
            stale = await asyncio.to_thread(_empty_dir, self.layout.runtime_sockets)
            if stale:
                log.warning("removed %d Runtime API socket directory(ies) left by a previous "
                            "core", stale)
            await self.kernel.reconcile(self.db.components())
            self.messaging.apply_deployed_builtins()
            # Answer the CLI only once the previous state is loaded: a client never sees a core
            # that has "forgotten" its components.
            await self.api.start()
            log.info("ready: management API on %s", self.layout.management_socket)
            worker = asyncio.create_task(self.deployments.run(), name="deployments")
            if self.fleet is not None:
                await self.fleet.start()
            try:
                await stop.wait()
            finally:
                if self.fleet is not None:
                    await self.fleet.aclose()
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        finally:
            log.info("stopping")
            await self.api.aclose()
            await runner.cleanup()
            await self.kernel.aclose()
            await self.functions.stop_all()
            await self.ipc.aclose()
            await self.messaging.aclose()
            self.db.close()
            with contextlib.suppress(FileNotFoundError):
                self.layout.endpoints_file.unlink()
            log.info("stopped")

    def _check_root_reachable(self) -> None:
        """Components run as an unprivileged user: every directory above the root must let
        them through, or their scripts and NoContainer functions cannot reach their files."""
        if os.geteuid() != 0:
            return
        for parent in [self.layout.root, *self.layout.root.parents]:
            if not parent.stat().st_mode & 0o001:
                log.warning(
                    "the run-as user cannot traverse %s (mode %o): components and NoContainer "
                    "functions will not reach their files under %s; use a root in a public "
                    "directory (default /var/lib/sprig) or chmod o+x %s",
                    parent, parent.stat().st_mode & 0o777, self.layout.root, parent)
                return

    def _write_endpoints(self) -> None:
        path = self.layout.endpoints_file
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.endpoints, indent=2))
        tmp.replace(path)

    # -- management API ------------------------------------------------------------------

    def _register_methods(self) -> None:
        m = self.api.method
        m("status", self._status)
        m("deployment.create", self._deployment_create)
        m("deployment.list", self._deployment_list)
        m("deployment.status", self._deployment_status)
        m("component.list", self._component_list)
        m("component.details", self._component_details)
        m("component.restart", self._component_restart)
        m("component.stop", self._component_stop)
        m("invoke", self._invoke)
        m("component.wait", self._component_wait)
        self.api.stream("deployment.wait", self._deployment_wait)
        m("pubsub.publish", self.messaging.publish)
        self.api.stream("pubsub.subscribe", self.messaging.subscribe)
        m("shadow.get", self.messaging.shadow_get)

    async def _status(self, params: dict[str, Any]) -> Any:
        comps = self.kernel.list_components()
        return {
            "version": __version__,
            "root": str(self.layout.root),
            "pid": os.getpid(),
            "uptimeSeconds": round(time.time() - self.started, 1),
            "thingName": self.settings.thing_name,
            "endpoints": self.endpoints,
            "components": len(comps),
            "states": {c["name"]: c["state"] for c in comps},
            "currentDeployment": self.deployments.current,
            "fleet": None if self.fleet is None else {
                "thingGroups": list(self.fleet.settings.thing_groups),
                "topicPrefix": self.fleet.settings.topic_prefix,
                "store": self.fleet.settings.store.uri,
                "brokerConnected": self.fleet.bridge.connected,
                "executions": {k: r.to_json() for k, r in self.fleet.state.executions.items()},
            },
        }

    async def _deployment_create(self, params: dict[str, Any]) -> Any:
        doc = dict(params.get("deployment") or {})
        if "merge" in params:       # shorthand used by `sprig lambda import --deploy`
            doc.setdefault("merge", params["merge"])
        request = DeploymentRequest.from_document(doc)
        record = self.deployments.submit(request,
                                         params.get("recipeDir") or params.get("recipe_dir"),
                                         params.get("artifactDir") or params.get("artifact_dir"))
        if params.get("wait"):
            final = await self.deployments.wait_finished(record.id, None)
            if final is not None:
                return redact_secrets(final.summary())
        return redact_secrets(record.summary())

    async def _deployment_wait(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        dep_id = str(params.get("deploymentId", ""))
        final = await self.deployments.wait_finished(dep_id, None)
        if final is None:
            raise SprigError(f"no deployment {dep_id!r}")
        yield redact_secrets(final.summary())

    async def _deployment_list(self, params: dict[str, Any]) -> Any:
        return [redact_secrets(d.summary())
                for d in self.db.deployments(int(params.get("limit", 10)))]

    async def _deployment_status(self, params: dict[str, Any]) -> Any:
        dep_id = str(params.get("deploymentId", ""))
        rec = self.db.deployment(dep_id)
        if rec is None:
            raise ValidationError("deploymentId", "no such deployment", value=dep_id,
                                  allowed="an id from `sprig deployment list`")
        return redact_secrets(rec.summary())

    async def _component_list(self, params: dict[str, Any]) -> Any:
        return self.kernel.list_components()

    def _service(self, name: str) -> Any:
        svc = self.kernel.services.get(name)
        if svc is None:
            raise ValidationError("name", "no such component", value=name,
                                  allowed=", ".join(sorted(self.kernel.services)) or "(none)")
        return svc

    async def _component_details(self, params: dict[str, Any]) -> Any:
        name = str(params.get("name", ""))
        self._service(name)
        details = self.kernel.describe(name)
        if details is not None and name == SECRET_MANAGER:
            details = redact_secrets(details)
        fn = self.functions.get(name)
        if details is not None and fn is not None:
            details["function"] = {
                "arn": fn.spec.function_arn,
                "runtime": fn.spec.runtime,
                "handler": fn.spec.handler,
                "runtimeWarning": fn.warning,
                "pool": repr(fn.pool),
                "eventDrops": fn.event_drops,
            }
        return details

    async def _component_wait(self, params: dict[str, Any]) -> Any:
        """Wait (on state changes, no polling) until a component is in one of ``states``."""
        name = str(params.get("name", ""))
        states = set(params.get("states") or [])
        timeout = float(params.get("timeout", 60))

        def reached() -> bool:
            svc = self.kernel.services.get(name)
            return svc is not None and str(svc.state) in states

        ok = await self.kernel.wait_until(reached, timeout)
        svc = self.kernel.services.get(name)
        return {"reached": ok, "state": str(svc.state) if svc else None,
                "lastError": svc.last_error if svc else None}

    async def _component_restart(self, params: dict[str, Any]) -> Any:
        names = params.get("names") or []
        services = [self._service(n) for n in names]
        for svc in services:
            self.db.set_user_stopped(svc.name, False)
            self.db.set_health(svc.name, broken=False, last_error="")
            svc.tracker.reset()
            if svc.state.name == "BROKEN":
                from sprig.core.state import State

                svc.state = State.FINISHED
            await svc.restart()
        return {"restarted": names}

    async def _component_stop(self, params: dict[str, Any]) -> Any:
        names = params.get("names") or []
        services = [self._service(n) for n in names]
        for svc in services:
            self.db.set_user_stopped(svc.name, True)
            await svc.stop()
        return {"stopped": names}

    async def _invoke(self, params: dict[str, Any]) -> Any:
        payload = base64.b64decode(params.get("payload", ""))
        try:
            inv_type = InvocationType(params.get("invocationType", "RequestResponse"))
        except ValueError:
            raise ValidationError("invocationType", "unknown invocation type",
                                  value=params.get("invocationType"),
                                  allowed="RequestResponse, Event, DryRun") from None
        inv = Invocation(payload=payload, invocation_type=inv_type,
                         client_context=params.get("clientContext"), source="cli")
        fn = self.functions.find(str(params.get("function", "")))
        if inv_type is InvocationType.DRY_RUN:
            return {"statusCode": 204}
        result = await fn.invoke(inv, bool(params.get("logTail")))
        return {
            "statusCode": 202 if inv_type is InvocationType.EVENT else 200,
            "requestId": result.request_id,
            "payload": base64.b64encode(result.payload).decode(),
            "functionError": str(result.function_error) if result.function_error else None,
            "executedVersion": result.executed_version,
            "logTail": base64.b64encode(result.log_tail).decode(),
        }


def _setup_logging(layout: RootLayout, settings: CoreSettings) -> RateLimitHandler:
    """The core's log: ``logs/sprig.log`` (owner-only, rotated as component logs are, with
    config.yaml's ``logging`` figures) and stderr, both behind one rate limiter, so a flood of
    one error is summarised instead of pushing every other line out of the rotated files."""
    level = settings.log_level
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel("WARNING" if level == "WARN" else level)
    file_handler = CoreLogHandler(layout.core_log, settings.log_file_bytes,
                                  settings.log_total_bytes)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(file_handler.formatter)
    limiter = RateLimitHandler([file_handler, stderr])
    root.addHandler(limiter)
    return limiter


def _lock(layout: RootLayout) -> int:
    fd = os.open(layout.run / "core.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SprigError(f"another Sprig core is already running on {layout.root}") from None
    return fd


def _empty_dir(path: Path) -> int:
    """Remove what ``path`` holds (leftovers of a core that is gone); how many entries."""
    import shutil

    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed


async def _main(root: Path) -> int:
    layout = RootLayout(root)
    layout.create()
    lock = _lock(layout)
    try:
        settings = CoreSettings.load(layout.config_file)
        limiter = _setup_logging(layout, settings)
        core = Core(layout, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(loop_exception_handler)
        signals_seen: list[int] = []

        def on_signal(sig: int) -> None:
            signals_seen.append(sig)
            if len(signals_seen) == 1:
                log.info("received %s: stopping gracefully (send it again to force)",
                         signal.Signals(sig).name)
                stop.set()
            else:
                log.warning("received %s again: exiting now", signal.Signals(sig).name)
                os._exit(1)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, partial(on_signal, sig))
        await core.run(stop)
        limiter.flush()      # the pending "repeated N times" summaries
        return 0
    finally:
        os.close(lock)


def run_core(root: Path) -> int:
    try:
        return asyncio.run(_main(root))
    except SprigError as e:
        print(f"sprig: {e}", file=sys.stderr)
        return 1
