"""The kernel: owns the services, starts them in dependency order, and reconciles the running
set with the desired set a deployment writes to the state database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sprig import __version__
from sprig.core.component import (
    GENERIC,
    LAMBDA,
    Component,
    interpolation_context,
    lifecycle_fingerprint,
    load_component,
    render,
)
from sprig.core.generic import GenericService
from sprig.core.identities import SandboxIdentities
from sprig.core.orphans import MARKER, ChildRegistry
from sprig.core.service import BuiltinService, Service
from sprig.core.state import State
from sprig.events import EventHub, Kind
from sprig.launcher.spec import ResourceLimits
from sprig.launcher.users import DEFAULT_RUN_AS
from sprig.logs import ComponentLog
from sprig.recipe.platform import current_platform
from sprig.recipe.resolve import order_by_dependencies
from sprig.run_as import RunAs
from sprig.settings import parse_posix_user

if TYPE_CHECKING:
    from sprig.paths import RootLayout
    from sprig.recipe.variables import VariableContext
    from sprig.settings import CoreSettings
    from sprig.state.db import ComponentRecord, StateDB

log = logging.getLogger("sprig.kernel")

StateListener = Callable[[str, State, State, str], None]
ServiceFactory = Callable[["Kernel", Component], Service]

# Built-in components: Sprig implements them in the core; the state is what Greengrass shows.
BUILTIN_STATES: dict[str, State] = {
    "aws.greengrass.Nucleus": State.FINISHED,
    "aws.greengrass.LambdaLauncher": State.FINISHED,
    "aws.greengrass.LambdaRuntimes": State.FINISHED,
    "aws.greengrass.LambdaManager": State.RUNNING,
    "aws.greengrass.TokenExchangeService": State.RUNNING,
    "aws.greengrass.LegacySubscriptionRouter": State.RUNNING,
    "aws.greengrass.SecretManager": State.RUNNING,
    "aws.greengrass.ShadowManager": State.RUNNING,
}


class Kernel:
    def __init__(self, layout: RootLayout, settings: CoreSettings, db: StateDB) -> None:
        self.layout = layout
        self.settings = settings
        self.db = db
        self.platform = current_platform()
        self._services: dict[str, Service] = {}
        self._components: dict[str, Component] = {}
        self.tokens: dict[str, str] = {}
        self._listeners: list[StateListener] = []
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logs: dict[str, ComponentLog] = {}
        self._factories: dict[str, ServiceFactory] = {}
        self.is_root = os.geteuid() == 0
        self._builtin_listeners: list[Callable[[BuiltinService], None]] = []
        self.children = ChildRegistry(layout.run / "children.json", layout.root)
        self.sandbox_ids = SandboxIdentities(db)
        #: extra environment of Lambda workers: (component, function ARN) -> variables
        self._lambda_env_providers: list[Callable[[Component, str], dict[str, str]]] = []
        #: called with (component name, changed key path) when a configuration changes
        self._config_listeners: list[Callable[[str, list[str]], None]] = []
        #: the core's events (sprig.events): state, configuration and log events start here
        self.events = EventHub()
        self.add_state_listener(self._state_event)
        self._config_listeners.append(self._configuration_event)
        #: why components asked for a core restart (Bootstrap exit 100) not yet carried out
        self._restart_reasons: list[str] = []
        #: set by the deployment service while it applies one (it then does the restart)
        self.deploying = False

    # -- the surface other layers use: read-only views, registrations, commands -------------
    @property
    def services(self) -> Mapping[str, Service]:
        """The running services by name (a read-only view: the kernel alone changes them)."""
        return MappingProxyType(self._services)

    @property
    def components(self) -> Mapping[str, Component]:
        """The desired components by name (read-only; change them with :meth:`reconcile`)."""
        return MappingProxyType(self._components)

    @property
    def restart_reasons(self) -> tuple[str, ...]:
        """Why components asked for a core restart (Bootstrap exit 100) not yet carried out."""
        return tuple(self._restart_reasons)

    def clear_restart_reasons(self) -> None:
        self._restart_reasons.clear()

    def on_configuration_change(self, listener: Callable[[str, list[str]], None]) -> None:
        """Call ``listener(component, key_path)`` whenever a configuration changes."""
        self._config_listeners.append(listener)

    def on_builtin_configured(self, listener: Callable[[BuiltinService], None]) -> None:
        """Call ``listener(service)`` when a built-in component is (re)configured."""
        self._builtin_listeners.append(listener)

    def add_lambda_env_provider(self,
                                provider: Callable[[Component, str], dict[str, str]]) -> None:
        """Add variables to Lambda workers' environment: ``provider(component, arn)``."""
        self._lambda_env_providers.append(provider)

    def lambda_environment(self, component: Component, arn: str) -> dict[str, str]:
        """What the providers add to a Lambda worker's environment."""
        env: dict[str, str] = {}
        for provider in self._lambda_env_providers:
            env.update(provider(component, arn))
        return env

    # -- wiring --------------------------------------------------------------------------

    def register_factory(self, component_type: str, factory: ServiceFactory) -> None:
        self._factories[component_type] = factory

    def add_state_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run a background task owned by the kernel (cancelled on close)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- state ---------------------------------------------------------------------------

    def state_changed(self, service: Service, old: State, new: State, reason: str) -> None:
        for listener in self._listeners:
            try:
                listener(service.name, old, new, reason)
            except Exception:
                log.exception("state listener failed")
        self.spawn(self._notify(), name="notify")

    def _state_event(self, name: str, old: State, new: State, reason: str) -> None:
        if self.events.wants(Kind.COMPONENT):
            svc = self._services.get(name)
            self.events.publish(Kind.COMPONENT, {
                "name": name, "state": str(new), "previous": str(old), "reason": reason,
                "version": svc.component.version if svc else None,
                "lastError": svc.last_error if svc else None})

    def _configuration_event(self, name: str, keys: list[str]) -> None:
        if self.events.wants(Kind.CONFIGURATION):
            self.events.publish(Kind.CONFIGURATION, {"name": name, "keys": keys})

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        """Wait until ``predicate()`` holds (checked at each state change); False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self._changed:
                    await self._changed.wait_for(predicate)
        except TimeoutError:
            return predicate()
        return True

    def request_core_restart(self, reason: str) -> None:
        """A Bootstrap step exited 100: Greengrass restarts the nucleus, so every component
        stops and starts again. Sprig restarts every component instead of itself; during a
        deployment, once its components are up (the deployment waits for them again)."""
        self._restart_reasons.append(reason)
        if not self.deploying:
            self.spawn(self.restart_components(), name="core-restart")

    async def restart_components(self) -> None:
        """Stop every component (dependents first), then start them again in dependency order
        with their Install steps, as a restarted nucleus does. BROKEN and stopped ones stay."""
        reasons, self._restart_reasons = self._restart_reasons, []
        log.warning("restarting every component, as Greengrass restarts the nucleus: %s",
                    "; ".join(reasons) or "requested")
        order = self.dependency_order(list(self._services))
        for name in reversed(order):
            await self._services[name].stop()
        for name in order:
            svc = self._services.get(name)
            if svc is None or svc.state is State.BROKEN or svc.component.record.user_stopped:
                continue
            svc.set_state(State.NEW)
            svc.start()

    def component_broken(self, service: Service, reason: str) -> None:
        self.db.set_health(service.name, broken=True, last_error=reason)

    def builtin_configured(self, service: BuiltinService) -> None:
        for cb in self._builtin_listeners:
            cb(service)

    # -- dependencies --------------------------------------------------------------------

    async def wait_for_dependencies(self, service: Service) -> None:
        deps = [d for d in service.component.dependencies if d in self._services]

        def ready() -> bool:
            return all(self._services[d].state in (State.RUNNING, State.FINISHED)
                       for d in deps if d in self._services)

        if deps and not ready():
            log.info("%s: waiting for dependencies %s", service.name, ", ".join(deps))
            await self.wait_until(ready, None)

    async def restart_dependents(self, service: Service) -> None:
        """A HARD dependency errored: its dependents restart (they wait for it to come back)."""
        for other in list(self._services.values()):
            if other.component.dependencies.get(service.name) == "HARD" and other.state in (
                State.RUNNING, State.STARTING, State.FINISHED, State.INSTALLED
            ):
                log.info("%s: restarting because its HARD dependency %s errored",
                         other.name, service.name)
                self.spawn(other.restart(), name=f"restart:{other.name}")

    def dependency_order(self, names: list[str]) -> list[str]:
        """``names`` (those that are components) ordered so that dependencies come first
        (:func:`sprig.recipe.resolve.order_by_dependencies`, the planner's order too)."""
        return order_by_dependencies({n: self._components[n].dependencies for n in names
                                      if n in self._components})

    # -- reconcile -----------------------------------------------------------------------

    def load(self, records: Mapping[str, ComponentRecord]) -> dict[str, Component]:
        return {name: load_component(rec, self.platform) for name, rec in records.items()}

    async def reconcile(self, records: Mapping[str, ComponentRecord]) -> None:
        """Make the running services match ``records``: stop what is removed or changed,
        reconfigure what can change live, start what is new — in dependency order."""
        target = self.load(records)
        health = self.db.health()
        old_components = self._components
        removed = [n for n in self._services if n not in target]
        # Stop removed components, dependents first.
        self._components = {**old_components, **target}
        for name in reversed(self.dependency_order(removed)):
            gone = self._services.pop(name)
            await gone.stop()
            await gone.uninstall()
            self._close_log(name)
        self._components = target
        for name, comp in target.items():
            old = old_components.get(name)
            if old is not None and old.configuration != comp.configuration:
                self._config_changed(name, old.configuration, comp.configuration)
        to_start: list[str] = []
        for name in self.dependency_order(list(target)):
            comp = target[name]
            svc = self._services.get(name)
            fingerprint = lifecycle_fingerprint(comp, self.interpolation_context(comp))
            if svc is not None and type(svc) is not type(self._make_service(comp)):
                await self._services.pop(name).stop()
                svc = None
            if svc is not None:
                if svc.component.version == comp.version and svc.fingerprint == fingerprint:
                    if svc.component.record != comp.record:
                        await svc.reconfigure(comp)
                        svc.component = comp
                    continue
                if svc.component.version == comp.version and await svc.reconfigure(comp):
                    svc.component = comp
                    svc.fingerprint = fingerprint
                    continue
                await svc.stop()
                self._services.pop(name)
            svc = self._make_service(comp)
            svc.fingerprint = fingerprint
            self._services[name] = svc
            broken, last_error = health.get(name, (False, ""))
            if broken:
                svc.mark_broken_from_store(last_error)
                continue
            if comp.record.user_stopped:
                svc.state = State.FINISHED
                continue
            to_start.append(name)
        for name in to_start:
            self._services[name].start()

    def _config_changed(self, name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """Tell listeners (IPC SubscribeToConfigurationUpdate) which top-level keys changed."""
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                for listener in self._config_listeners:
                    try:
                        listener(name, [key])
                    except Exception:
                        log.exception("configuration listener failed")

    def update_configuration(self, name: str, key_path: list[str], value: Any) -> None:
        """A component changes its own configuration (IPC UpdateConfiguration): MERGE ``value``
        at ``key_path``, persisted like a deployment's update (no restart, as Greengrass)."""
        from dataclasses import replace

        from sprig.config.update import ConfigUpdate
        from sprig.core.component import config_state
        from sprig.errors import ValidationError

        record = self.db.component(name)
        if record is None:
            raise ValidationError("componentName", "no such component", value=name)
        patch: Any = value
        for key in reversed(key_path):
            patch = {key: patch}
        if not isinstance(patch, dict):
            raise ValidationError("valueToMerge", "must be an object when keyPath is empty",
                                  value=value, allowed="a JSON object")
        state = config_state(record).apply(ConfigUpdate(merge=patch))
        new_record = replace(record, configuration=state.to_document())
        self.db.put_component(new_record)
        old = self._components.get(name)
        if old is not None:
            comp = load_component(new_record, self.platform)
            self._components[name] = comp
            svc = self._services.get(name)
            if svc is not None:
                svc.component = comp
            self._config_changed(name, old.configuration, comp.configuration)

    def _make_service(self, comp: Component) -> Service:
        if comp.name in BUILTIN_STATES:
            return BuiltinService(self, comp, BUILTIN_STATES[comp.name])
        factory = self._factories.get(comp.component_type)
        if factory is not None:
            return factory(self, comp)
        if comp.component_type in (GENERIC, LAMBDA):
            return GenericService(self, comp)
        return GenericService(self, comp)

    async def aclose(self) -> None:
        """Stop every service (dependents first), then the background tasks."""
        for name in reversed(self.dependency_order(list(self._services))):
            with contextlib.suppress(Exception):
                await self._services[name].stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for name in list(self._logs):
            self._close_log(name)

    # -- what a component's processes get ------------------------------------------------

    def interpolation_context(self, comp: Component) -> VariableContext:
        return interpolation_context(comp, self._components, self.layout,
                                     self.settings.thing_name)

    def render(self, text: str, ctx: VariableContext) -> str:
        return render(text, ctx)

    def token_for(self, name: str) -> str:
        token = self.tokens.get(name)
        if token is None:
            token = secrets.token_urlsafe(24)
            self.tokens[name] = token
        return token

    def component_for_token(self, token: str) -> str | None:
        for name, t in self.tokens.items():
            if secrets.compare_digest(t, token):
                return name
        return None

    def base_env(self, comp: Component) -> dict[str, str]:
        """Greengrass's component environment variables that mean something here."""
        token = self.token_for(comp.name)
        return {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": str(self.layout.work_dir(comp.name)),
            "AWS_IOT_THING_NAME": self.settings.thing_name,
            "AWS_REGION": self.settings.region,
            "AWS_DEFAULT_REGION": self.settings.region,
            "GGC_VERSION": __version__,
            "SVCUID": token,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(self.layout.ipc_socket),
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH": str(self.layout.ipc_socket),
            MARKER: str(self.layout.root),
        }

    def component_env(self, comp: Component, ctx: VariableContext,
                      step_setenv: Mapping[str, str]) -> dict[str, str]:
        env = self.base_env(comp)
        for key, value in comp.setenv.items():
            env[key] = render(value, ctx)
        for key, value in step_setenv.items():
            env[key] = render(value, ctx)
        return env

    def run_as_for(self, comp: Component, *, privileged: bool = False) -> RunAs | None:
        """The run-as user: root only when asked (RequiresPrivilege), else the deployment's
        ``runWith.posixUser``, else ``runWithDefault`` from config.yaml, else sprig_user."""
        if not self.is_root:
            return None
        if privileged:
            return RunAs("root", "root")
        run_with = comp.record.run_with or {}
        if run_with.get("posixUser"):
            return parse_posix_user(run_with["posixUser"], "runWith.posixUser",
                                    f"deployment of {comp.name}")
        return self.settings.run_with_default or DEFAULT_RUN_AS

    def system_limits(self, comp: Component) -> ResourceLimits | None:
        limits = comp.record.system_limits
        if not limits:
            return None
        mem = limits.get("memory")
        cpus = limits.get("cpus")
        return ResourceLimits(memory_kb=int(mem) if mem else None,
                              cpus=float(cpus) if cpus else None)

    def prepare_work_dir(self, comp: Component, uid: int | None = None) -> Path:
        """The component's work directory, owned by its run-as user (or by ``uid``, the host
        identity its processes run as: a sandbox uid) and its group, mode 0750."""
        work = self.layout.work_dir(comp.name)
        work.mkdir(parents=True, exist_ok=True)
        run_as = self.run_as_for(comp)
        if run_as is not None and self.is_root:
            from sprig.launcher.users import credentials_for

            creds = credentials_for(run_as)
            if creds is None:
                return work
            with contextlib.suppress(OSError):
                os.chown(work, creds.uid if uid is None else uid, creds.gid)
                os.chmod(work, 0o750)
        return work

    def needs_bootstrap(self, comp: Component) -> bool:
        key = f"bootstrap:{comp.name}"
        return self.db.get_meta(key) != self._bootstrap_key(comp)

    def bootstrap_done(self, comp: Component) -> None:
        self.db.set_meta(f"bootstrap:{comp.name}", self._bootstrap_key(comp))

    @staticmethod
    def _bootstrap_key(comp: Component) -> str:
        from sprig.recipe.model import StepName

        step = comp.steps.get(StepName.BOOTSTRAP)
        return json.dumps([comp.version, step.script if step else ""])

    # -- logs ----------------------------------------------------------------------------

    def component_log(self, name: str) -> ComponentLog:
        clog = self._logs.get(name)
        if clog is None:
            clog = ComponentLog(self.layout.component_log(name), self.settings.log_file_bytes,
                                self.settings.log_total_bytes, component=name)
            self._logs[name] = clog
        return clog

    def log_line(self, name: str, stream: str, text: str, level: str = "INFO") -> None:
        self.component_log(name).write_line(stream, text, level=level)
        if self.events.wants(Kind.LOG):
            self.events.publish(Kind.LOG, {"component": name, "stream": stream,
                                           "level": level, "text": text, "time": time.time()})

    def _close_log(self, name: str) -> None:
        clog = self._logs.pop(name, None)
        if clog is not None:
            clog.close()

    # -- queries -------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any] | None:
        svc = self._services.get(name)
        if svc is None:
            return None
        comp = svc.component
        return {
            "name": name,
            "version": comp.version,
            "state": str(svc.state),
            "componentType": comp.component_type,
            "lastError": svc.last_error,
            "statusDetail": svc.status_detail,
            "configuration": comp.configuration,
            "recipe": comp.record.recipe,
            "dependencies": comp.dependencies,
            "runWith": comp.record.run_with,
            "systemResourceLimits": comp.record.system_limits,
        }

    def list_components(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "version": s.component.version, "state": str(s.state)}
            for n, s in sorted(self._services.items())
        ]

    def now(self) -> float:
        return time.time()
