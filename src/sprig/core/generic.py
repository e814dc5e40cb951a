"""Generic components: the recipe's lifecycle scripts, run as supervised processes.

Bootstrap exit codes mean what they mean to the nucleus (``BootstrapManager``): 0 done,
100 "restart the nucleus", 101 "reboot the device". Sprig honours 100 as the nucleus restart
would act on components: once the deployment's components are up, the kernel restarts every
component (see :meth:`sprig.core.kernel.Kernel.request_core_restart`). It never reboots a
device: 101 makes the component BROKEN at once, saying so, and fails the deployment (retrying
a bootstrap that asks for a reboot would change nothing).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from sprig.core.component import render_script
from sprig.core.lifecycle import Step
from sprig.core.service import Service, ServiceError
from sprig.core.state import State
from sprig.errors import LaunchError
from sprig.lambda_params import ContainerMode
from sprig.launcher.process import LaunchedProcess, spawn
from sprig.launcher.spec import LaunchSpec, ResourceLimits
from sprig.recipe.shell import PlacementError

if TYPE_CHECKING:
    from sprig.core.component import Component, StepSpec
    from sprig.core.kernel import Kernel

log = logging.getLogger("sprig.kernel")

#: Bootstrap exit codes with a meaning (nucleus BootstrapManager / the recipe reference).
RESTART_CORE = 100
REBOOT_DEVICE = 101


class GenericService(Service):
    """Runs Bootstrap/Install/Startup/Run/Shutdown/Recover scripts in ``work/<name>``."""

    def __init__(self, kernel: Kernel, component: Component) -> None:
        super().__init__(kernel, component)
        self._processes: list[LaunchedProcess] = []

    def has_processes(self) -> bool:
        return any(p.returncode is None for p in self._processes)

    # -- steps ---------------------------------------------------------------------------

    async def install(self) -> None:
        bootstrap = self.component.steps.get(Step.BOOTSTRAP)
        if bootstrap is not None and self.kernel.needs_bootstrap(self.component):
            code = await self._run_step(bootstrap)
            if code == REBOOT_DEVICE:
                self.fatal = True
                raise ServiceError(
                    "Bootstrap script exited with code 101, which asks Greengrass to reboot the "
                    "device; Sprig never reboots a device: reboot it yourself if the component "
                    "needs it, then deploy it again (a Bootstrap that exits 0 or 100)")
            if code not in (0, RESTART_CORE):
                raise ServiceError(f"Bootstrap script {self._exit_reason(code)}")
            self.kernel.bootstrap_done(self.component)
            if code == RESTART_CORE:
                self.kernel.request_core_restart(
                    f"the Bootstrap script of {self.name} exited with code 100")
        install = self.component.steps.get(Step.INSTALL)
        if install is not None:
            code = await self._run_step(install)
            if code != 0:
                raise ServiceError(f"Install script {self._exit_reason(code)}")

    async def run(self) -> None:
        startup = self.component.steps.get(Step.STARTUP)
        run = self.component.steps.get(Step.RUN)
        if startup is not None and not self._skipped(startup):
            self.watch_after_start = False
            self.set_state(State.STARTING)
            code = await self._run_step(startup, keep=True)
            if code != 0:
                raise ServiceError(f"Startup script {self._exit_reason(code)}")
            self.set_state(State.RUNNING)
            await self._stop_requested.wait()
            return
        if run is not None and not self._skipped(run):
            proc = await self._launch(run)
            self.watch_after_start = True
            self.set_state(State.RUNNING)
            status = await proc.wait()
            self._processes.remove(proc)
            self.kernel.children.remove(proc.pid)
            if status.ok:
                self.set_state(State.FINISHED)
                return
            raise ServiceError(f"Run script {status.describe()}")
        self.set_state(State.FINISHED)

    async def shutdown(self) -> None:
        step = self.component.steps.get(Step.SHUTDOWN)
        if step is not None and self.state is State.STOPPING:
            try:
                code = await self._run_step(step)
                if code != 0:
                    log.warning("%s: Shutdown script %s", self.name, self._exit_reason(code))
            except ServiceError as e:
                log.warning("%s: Shutdown: %s", self.name, e)
        procs, self._processes = self._processes, []
        await asyncio.gather(*(asyncio.shield(p.aclose(grace_s=5.0)) for p in procs))
        for p in procs:
            self.kernel.children.remove(p.pid)

    async def uninstall(self) -> None:
        step = self.component.steps.get(Step.UNINSTALL)
        if step is None:
            return
        try:
            code = await self._run_step(step)
        except ServiceError as e:
            log.warning("%s: Uninstall: %s", self.name, e)
            return
        if code == 0:
            log.info("%s: Uninstall script done", self.name)
        else:
            log.warning("%s: Uninstall script %s", self.name, self._exit_reason(code))

    async def recover(self) -> None:
        step = self.component.steps.get(Step.RECOVER)
        if step is not None:
            code = await self._run_step(step)
            if code != 0:
                log.warning("%s: Recover script %s", self.name, self._exit_reason(code))

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _exit_reason(code: int | None) -> str:
        if code is None:
            return "timed out"
        if code < 0:
            return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def _skipped(self, step: StepSpec) -> bool:
        if not step.skipif:
            return False
        ctx = self.kernel.interpolation_context(self.component)
        kind, _, arg = self.kernel.render(step.skipif, ctx).strip().partition(" ")
        arg = arg.strip()
        found = shutil.which(arg) is not None if kind.lower() == "onpath" else Path(arg).exists()
        if found:
            log.info("%s: %s skipped (Skipif %s)", self.name, step.name, step.skipif)
        return found

    async def _launch(self, step: StepSpec) -> LaunchedProcess:
        ctx = self.kernel.interpolation_context(self.component)
        try:
            # Configuration values reach the script by environment, never as script text.
            placed = render_script(step, ctx)
        except PlacementError as e:
            raise ServiceError(f"{step.name} script could not start: {e}") from None
        env = {**self.kernel.component_env(self.component, ctx, step.setenv), **placed.env}
        work = self.kernel.prepare_work_dir(self.component)
        limits = self.kernel.system_limits(self.component)
        spec = LaunchSpec(
            argv=("/bin/sh", "-c", placed.script),
            env=env,
            cwd=work,
            run_as=self.kernel.run_as_for(self.component, privileged=step.requires_privilege),
            container_mode=ContainerMode.NO_CONTAINER,
            limits=limits or ResourceLimits(),
            # unique: several cores (tests, a restart with stragglers) may share the hierarchy
            cgroup_name=f"{self.name}-{step.name.lower()}-{secrets.token_hex(4)}",
            owner=self.name,
        )
        name = self.name

        def on_output(stream: str, line: bytes) -> None:
            self.kernel.log_line(name, stream, line.decode("utf-8", "replace"))

        try:
            proc = await spawn(spec, on_output=on_output)
        except LaunchError as e:
            raise ServiceError(f"{step.name} script could not start: {e}") from None
        self._processes.append(proc)
        self.kernel.children.add(proc.pid)
        return proc

    async def _run_step(self, step: StepSpec, *, keep: bool = False) -> int | None:
        """Run a step to completion; its exit code, or None on timeout (the tree is killed)."""
        if self._skipped(step):
            return 0
        proc = await self._launch(step)
        try:
            async with asyncio.timeout(step.timeout_s):
                status = await proc.wait()
        except TimeoutError:
            await asyncio.shield(proc.aclose(grace_s=2.0))
            self._processes.remove(proc)
            self.kernel.children.remove(proc.pid)
            return None
        if not keep:
            self._processes.remove(proc)
            self.kernel.children.remove(proc.pid)
        if status.returncode is not None:
            return status.returncode
        return -(status.signal or 9)
