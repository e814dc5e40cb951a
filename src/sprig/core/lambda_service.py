"""Lambda components: a :class:`~sprig.functions.function.Function` run as a kernel service.

A Lambda component's behaviour comes from its configuration keys (``pinned``,
``timeoutInSeconds``, ``containerMode`` ...) and from the ``AWS_GREENGRASS_LAMBDA_*`` keys of its
lifecycle ``setenv`` (ARN, handler, runtime, artifact path, exec args) — exactly what AWS's
generated recipe holds — whatever its lifecycle scripts say: Sprig's built-in launcher replaces
``lambda-launcher start``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sprig.core.component import LAMBDA, Component, config_state, load_component
from sprig.core.service import LifecycleError, Service
from sprig.core.state import State
from sprig.errors import SprigError, ValidationError
from sprig.functions.config import LambdaConfig
from sprig.functions.errors import FunctionInitError
from sprig.functions.function import Function
from sprig.functions.worker import FunctionSpec
from sprig.lambda_params import ContainerMode
from sprig.launcher.spec import ResourceLimits
from sprig.local_api.functions_api import FunctionInfo
from sprig.recipe._digest import b64, decode_digest
from sprig.recipe.artifacts import chown_staged
from sprig.recipe.variables import ComponentVariables, VariableContext, interpolate

if TYPE_CHECKING:
    from sprig.core.kernel import Kernel
    from sprig.functions.manager import FunctionManager
    from sprig.paths import RootLayout
    from sprig.recipe.model import Recipe
    from sprig.state.db import ComponentRecord

log = logging.getLogger("sprig.lambda")

ENV_ARN = "AWS_GREENGRASS_LAMBDA_ARN"
ENV_HANDLER = "AWS_GREENGRASS_LAMBDA_FUNCTION_HANDLER"
ENV_RUNTIME = "AWS_GREENGRASS_LAMBDA_RUNTIME"
ENV_ARTIFACT = "AWS_GREENGRASS_LAMBDA_ARTIFACT_PATH"
ENV_EXEC_ARGS = "AWS_GREENGRASS_LAMBDA_EXEC_ARGS"

#: Hooks called with (component name, function) when a function starts / stops (messaging).
FunctionHook = Callable[[str, Function | None], None]


def _setenv(component: Component, ctx: VariableContext) -> dict[str, str]:
    return {k: interpolate(v, ctx) for k, v in component.setenv.items()}


def parse_arn(arn: str, source: str) -> tuple[str, str]:
    """(function name, version) of ``arn:aws:lambda:region:account:function:name:version``."""
    parts = arn.split(":")
    if len(parts) != 8 or parts[0] != "arn" or parts[2] != "lambda" or parts[5] != "function":
        raise ValidationError(ENV_ARN, "is not a versioned Lambda function ARN", value=arn,
                              source=source,
                              allowed="arn:aws:lambda:<region>:<account>:function:<name>:<version>")
    name, version = parts[6], parts[7]
    if not version or version == "$LATEST" or not version.isdigit():
        raise ValidationError(ENV_ARN, "the function ARN must carry a version number "
                              "($LATEST and aliases are not allowed)", value=arn, source=source,
                              allowed="…:function:<name>:<version number>")
    return name, version


def user_exec_args(raw: str | None) -> tuple[str, ...]:
    """The function's own ``execArgs``: what follows ``--handler=…`` in the exec args."""
    if not raw:
        return ()
    try:
        args = json.loads(raw)
    except ValueError:
        return ()
    if not isinstance(args, list):
        return ()
    for i, arg in enumerate(args):
        if isinstance(arg, str) and arg.startswith("--handler="):
            return tuple(str(a) for a in args[i + 1:])
    return ()


def build_spec(component: Component, ctx: VariableContext, *, work_dir: Path,
               run_as: Any, core_env: Mapping[str, str],
               system_limits: ResourceLimits | None,
               cache_dir: Path | None = None, strict: bool = False) -> FunctionSpec:
    """The function spec of a Lambda component (raises ValidationError naming the field);
    ``strict`` for a deployment's check (see :meth:`LambdaConfig.from_configuration`)."""
    source = f"component {component.name}"
    env = _setenv(component, ctx)
    missing = [k for k in (ENV_ARN, ENV_HANDLER, ENV_RUNTIME, ENV_ARTIFACT) if not env.get(k)]
    if missing:
        raise ValidationError(
            f"Lifecycle.Setenv.{missing[0]}", "a Lambda component needs this setenv key",
            source=source, allowed="a recipe made by `sprig lambda import` or by AWS")
    name, version = parse_arn(env[ENV_ARN], source)
    config = LambdaConfig.from_configuration(component.configuration, source, strict=strict)
    return FunctionSpec(
        component_name=component.name,
        component_version=component.version,
        function_name=name,
        function_version=version,
        function_arn=env[ENV_ARN],
        runtime=env[ENV_RUNTIME],
        handler=env[ENV_HANDLER],
        code_dir=Path(env[ENV_ARTIFACT]),
        config=config,
        work_dir=work_dir,
        exec_args=user_exec_args(env.get(ENV_EXEC_ARGS)),
        run_as=run_as,
        core_env=dict(core_env),
        system_limits=system_limits or ResourceLimits(),
        cache_dir=cache_dir,
    )


def sandbox_uid(kernel: Kernel, component: Component) -> int | None:
    """The host uid of a Lambda component's sandboxes (see :mod:`sprig.core.identities`): one
    per component in GreengrassContainer mode, when the core is root and the function does not
    run as root; None otherwise (the process runs as its run-as user)."""
    if not kernel.is_root:
        return None
    run_as = kernel.run_as_for(component)
    if run_as is None or run_as.user in ("root", "0"):
        return None
    try:
        config = LambdaConfig.from_configuration(component.configuration)
    except ValidationError:
        return None
    if config.container_mode is not ContainerMode.GREENGRASS_CONTAINER:
        return None
    return kernel.sandbox_ids.uid_for(component.name)


def process_owner(kernel: Kernel, component: Component) -> tuple[int, int] | None:
    """(uid, gid) owning a component's files on the host: its sandbox uid, else its run-as
    user; None when the core is not root (nothing to change)."""
    from sprig.launcher.users import credentials_for

    run_as = kernel.run_as_for(component)
    creds = credentials_for(run_as) if run_as is not None else None
    if creds is None:
        return None
    uid = sandbox_uid(kernel, component) if component.component_type == LAMBDA else None
    return (creds.uid if uid is None else uid), creds.gid


def validate_lambda(record: ComponentRecord, recipe: Recipe, layout: RootLayout,
                    platform: Mapping[str, str],
                    check_container: Callable[[LambdaConfig], None],
                    previous: ComponentRecord | None = None) -> None:
    """Deployment-time checks of a Lambda component (nothing is started)."""
    component = load_component(record, dict(platform))
    own = ComponentVariables(
        artifacts_path=str(layout.artifact_dir(record.name, record.version)),
        decompressed_path=str(layout.unarchived_dir(record.name, record.version)),
        work_path=str(layout.work_dir(record.name)),
        configuration=config_state(record).effective,
    )
    ctx = VariableContext(record.name, {record.name: own}, str(layout.root))
    spec = build_spec(component, ctx, work_dir=layout.work_dir(record.name), run_as=None,
                      core_env={}, system_limits=None, cache_dir=layout.cache, strict=True)
    cfg = spec.config
    source = f"component {record.name}"
    if cfg.container_mode is ContainerMode.NO_CONTAINER and (cfg.volumes or cfg.devices):
        what = "volumes" if cfg.volumes else "devices"
        raise ValidationError(
            f"containerParams.{what}", "containerMode NoContainer cannot use attached "
            f"{what}: a function without a container reaches the file system and devices "
            "directly; remove containerParams.volumes and containerParams.devices in the same "
            "deployment (RESET them) or keep containerMode GreengrassContainer",
            value=[v.source_path for v in cfg.volumes] or [d.path for d in cfg.devices],
            source=source, allowed="no volumes or devices with NoContainer")
    if cfg.container_mode is ContainerMode.NO_CONTAINER and cfg.ephemeral_storage_kb:
        raise ValidationError(
            "containerParams.ephemeralStorageSize", "containerMode NoContainer cannot cap its "
            "writable space: a function without a container writes to the device's disk "
            "directly; RESET containerParams.ephemeralStorageSize in the same deployment or "
            "keep containerMode GreengrassContainer", value=cfg.ephemeral_storage_kb,
            source=source, allowed="no ephemeralStorageSize with NoContainer")
    spec.resolve_runtime(build_jar=False)
    if cfg.container_mode is ContainerMode.GREENGRASS_CONTAINER:
        check_container(cfg)


#: Component state -> the Lambda API's function ``State``.
_API_STATES = {State.RUNNING: "Active", State.FINISHED: "Active", State.NEW: "Pending",
               State.INSTALLED: "Pending", State.STARTING: "Pending", State.ERRORED: "Failed",
               State.BROKEN: "Failed", State.STOPPING: "Inactive"}
_ARCHITECTURES = {"amd64": "x86_64", "aarch64": "arm64"}


def function_info(service: LambdaService) -> FunctionInfo | None:
    """What the Lambda API (ListFunctions, GetFunction) says of a Lambda component; None when
    its recipe does not describe a function (its deployment was refused then: not listed)."""
    component = service.component
    spec = service.spec
    if spec is None:
        try:
            spec = service._spec_for_listing()
        except SprigError:
            return None
    layout = service.kernel.layout
    artifact = next((a for m in component.recipe.manifests for a in m.artifacts), None)
    package = (layout.artifact_dir(component.name, component.version) / artifact.file_name
               if artifact is not None else spec.code_dir)
    try:
        st = package.stat()
        size, modified = (st.st_size if package.is_file() else 0), st.st_mtime
    except OSError:
        size, modified = 0, 0.0
    digest = ""
    if artifact is not None and artifact.digest:
        raw = decode_digest(artifact.digest, artifact.algorithm)
        digest = b64(raw) if raw is not None else ""
    state = _API_STATES.get(service.state, "Pending")
    if component.record.user_stopped:
        state = "Inactive"
    arch = service.kernel.platform.get("architecture", "")
    return FunctionInfo(
        name=spec.function_name, arn=spec.function_arn, version=spec.function_version,
        runtime=spec.runtime, handler=spec.handler, component=component.name,
        component_version=component.version, timeout_s=spec.config.timeout_s,
        memory_kb=spec.config.memory_kb, state=state,
        description=component.recipe.description or "",
        state_reason=service.last_error if state == "Failed" else "",
        environment=dict(spec.config.environment), last_modified=modified,
        code_sha256=digest, code_size=size, code_location=package.as_uri(),
        architecture=_ARCHITECTURES.get(arch, arch))


class LambdaService(Service):
    """Runs one Lambda function; its workers come and go under the Lambda manager's rules."""

    def __init__(self, kernel: Kernel, component: Component, manager: FunctionManager,
                 hooks: list[FunctionHook]) -> None:
        super().__init__(kernel, component)
        self.manager = manager
        self.hooks = hooks
        self.function: Function | None = None
        self.spec: FunctionSpec | None = None

    def _spec(self, component: Component) -> FunctionSpec:
        ctx = self.kernel.interpolation_context(component)
        env = self.kernel.base_env(component)
        arn = _setenv(component, ctx).get(ENV_ARN, "")
        env.update(self.kernel.lambda_environment(component, arn))
        uid = sandbox_uid(self.kernel, component)
        owner = process_owner(self.kernel, component)
        if owner is not None:
            # The code belongs to whoever runs it now (a deployment may have switched the
            # container mode since the artifacts were staged).
            chown_staged(component.recipe, self.kernel.layout, *owner)
        spec = build_spec(
            component, ctx,
            work_dir=self.kernel.prepare_work_dir(component, uid),
            run_as=self.kernel.run_as_for(component),
            core_env=env,
            system_limits=self.kernel.system_limits(component),
            cache_dir=self.kernel.layout.cache,
        )
        return replace(spec, sandbox_uid=uid, socket_root=self.kernel.layout.runtime_sockets)

    def _spec_for_listing(self) -> FunctionSpec:
        """The spec from the recipe alone (nothing is changed on disk): for the Lambda API
        while the component has not installed (NEW, or BROKEN from a previous core)."""
        component = self.component
        return build_spec(component, self.kernel.interpolation_context(component),
                          work_dir=self.kernel.layout.work_dir(component.name), run_as=None,
                          core_env={}, system_limits=None, cache_dir=self.kernel.layout.cache)

    def _log(self, stream: str, line: str) -> None:
        self.kernel.log_line(self.name, stream, line)

    async def install(self) -> None:
        try:
            self.spec = self._spec(self.component)
        except SprigError as e:
            raise LifecycleError(str(e)) from None

    async def run(self) -> None:
        assert self.spec is not None
        try:
            # statusTimeoutInSeconds: how long a worker may take to report itself ready (its
            # first Runtime API /next) before the function is failed; AWS documents it as the
            # pinned function's status interval and leaves a missed one undefined.
            fn = await Function.create(self.spec, log=self._log, on_fatal=self._fatal,
                                       init_timeout_s=self.spec.config.status_timeout_s)
        except SprigError as e:
            raise LifecycleError(str(e)) from None
        self.function = fn
        self.status_detail = fn.warning or ""
        self.manager.add(fn)
        self.set_state(State.STARTING)
        try:
            await fn.start()
        except FunctionInitError as e:
            raise LifecycleError(str(e)) from None
        for hook in self.hooks:
            hook(self.name, fn)
        self.set_state(State.RUNNING)
        await self._stop_requested.wait()

    def _fatal(self, reason: str) -> None:
        if self.state in (State.RUNNING, State.STARTING):
            self.report_error(reason)

    async def shutdown(self) -> None:
        fn, self.function = self.function, None
        if fn is None:
            return
        for hook in self.hooks:
            hook(self.name, None)
        self.manager.remove(self.name)
        await fn.stop()

    def has_processes(self) -> bool:
        return self.function is not None

    async def reconfigure(self, component: Component) -> bool:
        if self.function is None or self.state is not State.RUNNING:
            return False
        try:
            spec = self._spec(component)
            await self.function.reconfigure(spec)
            self.function.init_timeout_s = spec.config.status_timeout_s
        except SprigError as e:
            log.warning("%s: reconfigure failed, restarting: %s", self.name, e)
            return False
        self.spec = spec
        self.component = component
        for hook in self.hooks:
            hook(self.name, self.function)
        return True
