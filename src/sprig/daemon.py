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
import gc
import importlib.util
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sprig import __version__, assets, disk
from sprig.config.visibility import SECRET_MANAGER, redact_secrets
from sprig.core.ipc_adapter import KernelIpcCore
from sprig.core.kernel import Kernel
from sprig.core.lambda_service import (
    FunctionHook,
    LambdaService,
    function_info,
    validate_lambda,
)
from sprig.core.messaging import CoreMessaging
from sprig.core.observe import DeviceView, component_graph, function_list
from sprig.core.state import State
from sprig.deployment.planner import Planner
from sprig.deployment.request import WARNINGS, DeploymentRequest
from sprig.deployment.service import DeploymentService
from sprig.errors import SprigError, ValidationError
from sprig.events import Kind
from sprig.functions.config import LambdaConfig
from sprig.functions.durable import EventJournal
from sprig.functions.function import Function
from sprig.functions.invocation import Invocation, InvocationResult, InvocationType
from sprig.functions.manager import FunctionManager
from sprig.httpserver import Deferred
from sprig.ipc.server import IpcServer
from sprig.launcher import etc_view
from sprig.launcher.bubblewrap import ETC_PATHS, SYSTEM_DIRS
from sprig.launcher.capabilities import check_device, require_container_support
from sprig.launcher.process import set_cgroup_prefix, sweep_own_cgroups
from sprig.local_api.credentials import ensure_credentials
from sprig.local_api.functions_api import FunctionInfo, FunctionsApi
from sprig.local_api.invoke_api import start_invoke_api
from sprig.local_api.management import ManagementServer
from sprig.log_ratelimit import RateLimitHandler, loop_exception_handler
from sprig.logs import CoreLogHandler
from sprig.paths import RootLayout
from sprig.settings import CoreSettings
from sprig.state.db import EventStore, StateDB

if TYPE_CHECKING:
    from sprig.fleet.agent import FleetAgent  # imported only on fleet devices (memory)

log = logging.getLogger("sprig.core")

#: ``0`` turns durable Event invocations off (they are then queued in memory only, as in
#: Greengrass). For measurements (the baseline of ``bench/events.py``), not for production.
ENV_DURABLE_EVENTS = "SPRIG_DURABLE_EVENTS"
#: How often a start-up write that failed on a full disk (``run/endpoints.json``) is retried.
DISK_RETRY_S = 2.0


def cgroup_prefix(root: Path) -> str:
    """``r<digest of the root>-``: what every cgroup of the core on ``root`` is named after
    (see set_cgroup_prefix); public so that tools (the benchmark) find a core's cgroups."""
    import hashlib

    return "r" + hashlib.sha256(str(root).encode()).hexdigest()[:8] + "-"


class Core:
    """The running core: every long-lived part, and the management API's methods."""

    def __init__(self, layout: RootLayout, settings: CoreSettings) -> None:
        # This core's cgroups are named r<digest of the root>-…: see set_cgroup_prefix.
        set_cgroup_prefix(cgroup_prefix(layout.root))
        # Sandboxes bind one prepared /etc kept under the root (see launcher.etc_view).
        etc_view.use(layout.root / "sandbox-etc", ETC_PATHS, SYSTEM_DIRS)
        self.layout = layout
        self.settings = settings
        self.db = StateDB(layout.state_db)
        self.kernel = Kernel(layout, settings, self.db)
        journal = None
        if os.environ.get(ENV_DURABLE_EVENTS, "1") != "0":
            journal = EventJournal(partial(EventStore, layout.state_db))
        self.functions = FunctionManager(journal)
        self.function_hooks: list[FunctionHook] = []
        self.planner = Planner(layout, self.db, self.kernel.platform)
        self.deployments = DeploymentService(self.kernel, self.planner, self.db)
        self.api = ManagementServer(layout.management_socket, root=layout.root)
        self.messaging = CoreMessaging(self.kernel, self.functions)
        self.function_hooks.append(self.messaging.function_changed)
        self.kernel.add_lambda_env_provider(self.messaging.function_env)
        self.ipc = IpcServer(layout.ipc_socket,
                             KernelIpcCore(self.kernel, self.messaging.bus, self.messaging.bridge,
                                           self.messaging.messaging.deployed_shadows,
                                           self.deployments.notices,
                                           self.restart_component, self.stop_component))
        self.endpoints: dict[str, str] = {}
        self._assets_published = False
        self.started = time.time()
        self.device = DeviceView(self.kernel, self.started)
        #: the local web console (sprig.console.server.ConsoleServer) once started, if enabled
        self.console: Any = None
        self._console_error = ""
        self.function_hooks.append(self._observe_function)
        self._device_report: Any = None
        self.kernel.register_factory(
            "aws.greengrass.lambda",
            lambda kernel, comp: LambdaService(kernel, comp, self.functions, self.function_hooks))
        self.planner.validators["aws.greengrass.lambda"] = self._validate_lambda
        self.planner.validators.setdefault("aws.greengrass.generic",
                                           self.messaging.validate_builtin)
        self.planner.owner_for = self._artifact_owner
        self.planner.check_run_as = self._check_run_as
        self.fleet: FleetAgent | None = None
        if settings.fleet is not None and self.messaging.bridge is not None:
            from sprig.fleet.agent import FleetAgent  # only on fleet devices (memory)

            self.fleet = FleetAgent(settings.fleet, self.kernel, self.deployments,
                                    self.messaging.bridge)
        self._register_methods()

    def _check_container(self, config: LambdaConfig) -> None:
        if self._device_report is None:
            self._device_report = check_device()
        require_container_support(
            need_memory_limit=True, report=self._device_report,
            read_only_devices=tuple(d.path for d in config.devices if not d.writable))

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
        self._check_free_space()
        self._publish_assets()
        await self.messaging.start()
        await self.ipc.start()
        credentials = ensure_credentials(self.layout.credentials)
        runner, url = await start_invoke_api(self.functions, credentials,
                                             port=self.settings.invoke_api_port,
                                             region=self.settings.region,
                                             extra_routes=[FunctionsApi(self).register])
        self.endpoints["lambda"] = url
        self.endpoints["management"] = f"unix://{self.layout.management_socket}"
        self.endpoints["ipc"] = f"unix://{self.layout.ipc_socket}"
        self.endpoints["sdk_v1"] = f"http://127.0.0.1:{self.messaging.messaging.sdk_ipc.port}"
        retry = None
        if not self._write_endpoints() or not self._assets_published:
            retry = asyncio.create_task(self._retry_start_up_writes(), name="start-up writes")
        log.info("Sprig %s core on %s; invoke API %s; event loop %s", __version__,
                 self.layout.root, url, type(asyncio.get_running_loop()).__module__.split(".")[0])
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
            await self._forget_removed_functions_events()
            await self.kernel.reconcile(self.db.components())
            self.messaging.apply_deployed_builtins()
            await self._start_console()
            # Answer the CLI only once the previous state is loaded: a client never sees a core
            # that has "forgotten" its components.
            await self.api.start()
            # What exists now (modules, classes, the restored components) lives as long as the
            # core: out of the cyclic collector's sight, a full collection walks ~3k objects
            # instead of ~33k (8.4 → 0.7 ms of pause with the benchmark's functions deployed).
            # Only start-up's objects: what later deployments create may become cyclic garbage.
            gc.freeze()
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
            if retry is not None:
                retry.cancel()
            if self.console is not None:
                await self.console.aclose()
            await self.api.aclose()
            await runner.cleanup()
            await self.kernel.aclose()
            await self.functions.aclose()
            await self.ipc.aclose()
            await self.messaging.aclose()
            self.db.close()
            with contextlib.suppress(FileNotFoundError):
                self.layout.endpoints_file.unlink()
            log.info("stopped")

    def deployed_functions(self) -> list[FunctionInfo]:
        """The Lambda API's catalog (:class:`~sprig.local_api.functions_api.FunctionCatalog`):
        every deployed Lambda component, whatever its state."""
        found = (function_info(svc) for svc in self.kernel.services.values()
                 if isinstance(svc, LambdaService))
        return [info for info in found if info is not None]

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

    async def _start_console(self) -> None:
        """The web console, when config.yaml's ``console.enabled`` (the default). A console
        that cannot start (its port taken, a bad certificate) is logged and left out: the
        device keeps running its components; ``sprig console login`` says why."""
        cfg = self.settings.console
        if not cfg.enabled:
            return
        from sprig.console.server import ConsoleServer

        tls: tuple[Path, Path] | None = None
        if cfg.tls is not None:
            cert, key = cfg.tls
            if not cert:                  # the device's certificate: mqtt.tls's pair
                device = self.messaging.messaging.mqtt
                assert device is not None and device.tls is not None
                assert device.tls.cert_path is not None and device.tls.key_path is not None
                tls = (device.tls.cert_path, device.tls.key_path)
            else:
                tls = (self.layout.root / cert, self.layout.root / key)
        console = ConsoleServer(cfg, commands=self.api.handlers,
                                streams=self.api.stream_handlers, events=self.kernel.events,
                                layout=self.layout, tls_files=tls)
        try:
            url = await console.start()
        except SprigError as e:
            self._console_error = str(e)
            log.error("the console is not available: %s", e)
            return
        self.console = console
        self.endpoints["console"] = url
        self._write_endpoints()
        log.info("console on %s (sign in with: sprig console login)", url)

    def _write_endpoints(self) -> bool:
        """Write ``run/endpoints.json`` (atomically: a new file renamed over the old one).

        On a full disk the previous core's file is rewritten in place instead (truncating it
        frees the blocks the new text needs); if even that fails it is removed, so no client
        reads a dead core's ports. False then: :meth:`_retry_start_up_writes` writes it once
        there is space, and the core runs meanwhile.
        """
        path = self.layout.endpoints_file
        tmp = path.with_suffix(".tmp")
        text = json.dumps(self.endpoints, indent=2)
        try:
            tmp.write_text(text)
            tmp.replace(path)
        except OSError as e:
            if not disk.is_disk_full(e):
                raise
            tmp.unlink(missing_ok=True)
            try:
                if path.exists():
                    path.write_text(text)       # same size as the last one, give or take
                    return True
            except OSError as again:
                if not disk.is_disk_full(again):
                    raise
                path.unlink(missing_ok=True)
            if disk.WATCH.failed(path, "the API endpoints file"):
                log.error("no space left on %s: cannot write the API endpoints there (clients "
                          "that read it cannot find the invoke API until there is space; "
                          "retrying every %g s)", path, DISK_RETRY_S)
            return False
        if disk.WATCH.recovered(path) is not None:
            log.info("%s written: there is space again", path)
        return True

    async def _retry_start_up_writes(self) -> None:
        """Once there is space again, write what start-up could not (no restart needed)."""
        while True:
            await asyncio.sleep(DISK_RETRY_S)
            done = self._write_endpoints()
            if not self._assets_published:
                self._publish_assets()
            if done and self._assets_published:
                return

    def _check_free_space(self) -> None:
        """Say at start-up when the root's disk is full: the core runs, and ``sprig status``
        lists what could not be written."""
        free = disk.free_bytes(self.layout.root)
        if free is not None and free < disk.LOW_SPACE_BYTES:
            disk.WATCH.failed(self.layout.root, "the root's filesystem")
            log.error("no space left on %s (%d bytes free): the core runs, but log lines are "
                      "held back, deployments and Event invocations are refused until there "
                      "is space (see `sprig status`)", self.layout.root, free)

    def _publish_assets(self) -> None:
        """The runtime assets under the root; on a full disk the installed package's copy is
        used instead (fine unless the run-as user cannot read it: then a worker fails to
        start, naming the file)."""
        where = self.layout.root / "runtime-assets"
        try:
            assets.publish(self.layout.root)
        except OSError as e:
            if not disk.is_disk_full(e):
                raise
            if disk.WATCH.failed(where, "the runtime assets"):
                log.error("no space left on %s: cannot publish the runtime assets there; "
                          "workers use them from %s until there is space", where,
                          assets.PACKAGE_DIR)
            return
        self._assets_published = True
        if disk.WATCH.recovered(where) is not None:
            log.info("runtime assets published under %s: there is space again", where)

    async def _forget_removed_functions_events(self) -> None:
        """Stored Event invocations of functions a deployment removed are deleted (never while
        a deployment may still roll back)."""
        if self.db.next_pending() is not None:
            return
        try:
            gone = await self.functions.forget_events_except(set(self.db.components()))
        except disk.DiskFull as e:
            log.warning("stored events of removed functions not deleted: %s", e)
            return
        if gone:
            log.warning("deleted %d stored Event invocation(s) of functions no longer "
                        "deployed", gone)

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
        m("invoke", self._invoke, quick=self._invoke_quick)
        m("component.wait", self._component_wait)
        self.api.stream("deployment.wait", self._deployment_wait)
        m("pubsub.publish", self.messaging.publish)
        self.api.stream("pubsub.subscribe", self.messaging.subscribe)
        m("shadow.get", self.messaging.shadow_get)
        m("console.login", self._console_login)
        m("device.info", self.device.info)
        m("component.graph", self._component_graph)
        m("function.list", self._function_list)
        m("deployment.rollback", self._deployment_rollback)

    # -- what the console (and any observer) reads ---------------------------------------

    async def _console_login(self, params: dict[str, Any]) -> Any:
        """A one-time link to the console (``params.expiresIn``: seconds, at most 8 h)."""
        from sprig.console.auth import LINK_TTL_S

        if self.console is None:
            if not self.settings.console.enabled:
                raise ValidationError("console.enabled", "the console is disabled in "
                                      f"{self.layout.config_file}", value=False,
                                      allowed="true (the default), then restart the core")
            raise SprigError(f"the console could not start: {self._console_error}")
        ttl = params.get("expiresIn", LINK_TTL_S)
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) \
                or not 1 <= ttl <= LINK_TTL_S:
            raise ValidationError("expiresIn", "out of range", value=ttl,
                                  allowed=f"1..{LINK_TTL_S} seconds (8 hours)")
        return self.console.login_link(float(ttl))

    async def _component_graph(self, params: dict[str, Any]) -> Any:
        return component_graph(self.kernel)

    async def _function_list(self, params: dict[str, Any]) -> Any:
        return function_list(self.functions)

    async def _deployment_rollback(self, params: dict[str, Any]) -> Any:
        """A deployment back to where the device was before the last successful one."""
        from sprig.deployment.rollback import rollback_document

        return await self._deployment_create({"deployment": rollback_document(self.db),
                                              "wait": params.get("wait")})

    def _observe_function(self, name: str, fn: Any) -> None:
        """Invocation events (sprig.events) from a function's figures, while observed."""
        if fn is not None:
            fn.stats.listener = partial(self._invocation_event, name, fn)

    def _invocation_event(self, name: str, fn: Any, request_id: str, duration_ms: float | None,
                          error: str | None) -> None:
        events = self.kernel.events
        if not events.wants(Kind.INVOCATION):
            return
        from sprig.core.observe import function_view

        events.publish(Kind.INVOCATION, {
            "function": name, "requestId": request_id,
            "durationMs": None if duration_ms is None else round(duration_ms, 2),
            "error": error, "throttled": duration_ms is None, **function_view(fn)})

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
            "disk": disk.status(self.layout.root),
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
                return _summary(final)
        return _summary(record)

    async def _deployment_wait(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        dep_id = str(params.get("deploymentId", ""))
        final = await self.deployments.wait_finished(dep_id, None)
        if final is None:
            raise SprigError(f"no deployment {dep_id!r}")
        yield _summary(final)

    async def _deployment_list(self, params: dict[str, Any]) -> Any:
        return [_summary(d)
                for d in self.db.deployments(int(params.get("limit", 10)))]

    async def _deployment_status(self, params: dict[str, Any]) -> Any:
        dep_id = str(params.get("deploymentId", ""))
        rec = self.db.deployment(dep_id)
        if rec is None:
            raise ValidationError("deploymentId", "no such deployment", value=dep_id,
                                  allowed="an id from `sprig deployment list`")
        return _summary(rec)

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
                "workers": fn.details()["workers"],
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

    async def restart_component(self, name: str) -> None:
        """Restart a component as the operator asks it (CLI, console, IPC RestartComponent):
        a stopped or BROKEN one starts again with a clean error count."""
        svc = self._service(name)
        self.db.set_user_stopped(svc.name, False)
        self.db.set_health(svc.name, broken=False, last_error="")
        svc.tracker.reset()
        if svc.state is State.BROKEN:
            svc.state = State.FINISHED
        await svc.restart()

    async def stop_component(self, name: str) -> None:
        """Stop a component until it is restarted or redeployed (CLI, console, IPC)."""
        svc = self._service(name)
        self.db.set_user_stopped(svc.name, True)
        await svc.stop()

    async def _component_restart(self, params: dict[str, Any]) -> Any:
        names = params.get("names") or []
        for n in names:
            self._service(n)
        for n in names:
            await self.restart_component(n)
        return {"restarted": names}

    async def _component_stop(self, params: dict[str, Any]) -> Any:
        names = params.get("names") or []
        for n in names:
            self._service(n)
        for n in names:
            await self.stop_component(n)
        return {"stopped": names}

    def _invocation(self, params: dict[str, Any]) -> tuple[Function, Invocation]:
        payload = base64.b64decode(params.get("payload", ""))
        try:
            inv_type = InvocationType(params.get("invocationType", "RequestResponse"))
        except ValueError:
            raise ValidationError("invocationType", "unknown invocation type",
                                  value=params.get("invocationType"),
                                  allowed="RequestResponse, Event, DryRun") from None
        inv = Invocation(payload=payload, invocation_type=inv_type,
                         client_context=params.get("clientContext"), source="cli")
        return self.functions.find(str(params.get("function", ""))), inv

    async def _invoke(self, params: dict[str, Any]) -> Any:
        fn, inv = self._invocation(params)
        if inv.invocation_type is InvocationType.DRY_RUN:
            return {"statusCode": 204}
        return _invoke_result(inv, await fn.invoke(inv, bool(params.get("logTail"))))

    def _invoke_quick(self, params: dict[str, Any]) -> Deferred[Any] | None:
        """``invoke`` without a task (the hot path): a RequestResponse invocation is queued
        now and answered from its future's callback; the other types go :meth:`_invoke`."""
        fn, inv = self._invocation(params)
        if inv.invocation_type is not InvocationType.REQUEST_RESPONSE:
            return None
        return Deferred(fn.submit(inv, bool(params.get("logTail"))),
                        lambda future: _invoke_result(inv, future.result()))


def _invoke_result(inv: Invocation, result: InvocationResult) -> dict[str, Any]:
    return {
        "statusCode": 202 if inv.invocation_type is InvocationType.EVENT else 200,
        "requestId": result.request_id,
        "payload": base64.b64encode(result.payload).decode(),
        "functionError": result.function_error.lambda_api if result.function_error
        else None,
        "executedVersion": result.executed_version,
        "logTail": base64.b64encode(result.log_tail).decode(),
    }


def _summary(record: Any) -> Any:
    """A deployment as the CLI shows it: its summary (secrets redacted) and, at the top, the
    warnings of what its recipes held that Sprig ignored."""
    summary = redact_secrets(record.summary())
    summary["warnings"] = list(record.document.get(WARNINGS) or [])
    return summary


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


#: Which event loop runs the core: ``asyncio`` (the standard library's, the default) or
#: ``uvloop`` (libuv; ``pip install 'sprig[uvloop]'``).
ENV_EVENT_LOOP = "SPRIG_EVENT_LOOP"
EVENT_LOOPS = ("asyncio", "uvloop")


def event_loop_kind() -> str:
    """The loop ``SPRIG_EVENT_LOOP`` names (default asyncio).

    Why uvloop is opt-in: measured by turns in the benchmark (BENCHMARKS.md, "Levers") it cuts
    the core's CPU per warm invocation by 5-14 % for ~2-3 MB of resident memory, which now fits
    the 40 MB budget (``sprig core run`` no longer loads the other commands). But the whole
    suite run on uvloop found behaviour that differs from asyncio's: at the file-descriptor
    limit libuv accepts and closes waiting connections silently (asyncio's refusal is logged,
    see :mod:`sprig.log_ratelimit`), and one crash trial's ``deployment.wait`` stream ended
    without its answer (once; five reruns of that scenario on uvloop passed), not yet
    explained. Until both are understood, a device short of CPU chooses uvloop knowingly.

    Raises:
        SprigError: an unknown loop, or uvloop asked for and not installed.
    """
    kind = os.environ.get(ENV_EVENT_LOOP, "asyncio")
    if kind not in EVENT_LOOPS:
        raise SprigError(f"{ENV_EVENT_LOOP}: unknown event loop (got {kind!r}); allowed: "
                         + " or ".join(EVENT_LOOPS))
    if kind == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise SprigError(f"{ENV_EVENT_LOOP}=uvloop: uvloop is not installed (pip install "
                         "'sprig[uvloop]'); allowed without it: asyncio")
    return kind


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run the core's main coroutine on the loop :func:`event_loop_kind` picks."""
    try:
        kind = event_loop_kind()
    except SprigError:
        main.close()
        raise
    if kind == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def run_core(root: Path) -> int:
    try:
        return _run(_main(root))
    except SprigError as e:
        print(f"sprig: {e}", file=sys.stderr)
        return 1
