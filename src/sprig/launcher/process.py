"""Start, watch and kill one process described by a :class:`LaunchSpec`.

Every process gets its own session (so its process group is its tree) and, when a cgroup
driver is available, its own cgroup joined *before it runs anything of the workload* so that
nothing it allocates escapes the limit and nothing it forks escapes the kill. NoContainer
processes run directly as the run-as user; GreengrassContainer processes run inside a
bubblewrap sandbox (see :mod:`sprig.launcher.bubblewrap`) that is started as the run-as user.

No Python runs in the child between fork and exec when it can be helped: the user is dropped
by ``setpriv`` and (cgroup v1) the cgroup joined by a shell that writes 0 to ``tasks``, both
exec'd in front of the command, so ``Popen`` can vfork instead of copying the core's page
tables, and the join skips the kernel's global lock. See :func:`spawn` for the fallbacks.

Cgroup policy (see :func:`needs_cgroup`): GreengrassContainer always uses one (memory limit,
and the only way to reach processes inside the sandbox's PID namespace); NoContainer uses one
only when ``systemResourceLimits`` are set. Without limits the process group is enough to kill
an ordinary tree. The price is that a NoContainer child that leaves its process group
(``setsid``) survives the kill — as it would in Greengrass's NoContainer mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sprig.errors import LaunchError, SandboxUnavailable
from sprig.lambda_params import ContainerMode
from sprig.launcher import cgroups, peers, plumbing, users
from sprig.launcher.registry import REGISTRY, descendants
from sprig.launcher.spec import LaunchSpec

OutputCallback = plumbing.OutputCallback
MAX_LINE = plumbing.MAX_LINE
_DRAIN_AFTER_EXIT_S = 1.0     # how long to keep reading output after the leader exited
_counter = itertools.count(1)


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended."""

    returncode: int | None      # exit code, None if killed by a signal
    signal: int | None          # the signal that killed it
    oom_killed: bool            # the memory cgroup killed it (limit exceeded)
    memory_limit_kb: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.oom_killed

    def describe(self) -> str:
        if self.oom_killed:
            limit = f"of {self.memory_limit_kb} KB " if self.memory_limit_kb else ""
            return f"killed: memory limit {limit}exceeded"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = "unknown"
            return f"killed by signal {self.signal} ({name})"
        return f"exited with code {self.returncode}"


def exit_status(returncode: int, *, sandboxed: bool, oom_killed: bool,
                memory_limit_kb: int | None) -> ExitStatus:
    """Map a wait status to :class:`ExitStatus`.

    bubblewrap reports a child killed by signal N as exit code 128+N (as shells do), so inside
    a sandbox codes 129..128+NSIG are read as signals.
    """
    if returncode < 0:
        return ExitStatus(None, -returncode, oom_killed, memory_limit_kb)
    if sandboxed and 128 < returncode < 128 + signal.NSIG:
        return ExitStatus(None, returncode - 128, oom_killed, memory_limit_kb)
    return ExitStatus(returncode, None, oom_killed, memory_limit_kb)


def needs_cgroup(spec: LaunchSpec) -> bool:
    """True if the spec cannot be honoured without a cgroup."""
    if spec.container_mode is ContainerMode.GREENGRASS_CONTAINER:
        return True
    return spec.limits.memory_kb is not None or spec.limits.cpus is not None


def _pipe_unread(transport: asyncio.BaseTransport) -> int:
    """Bytes waiting in the pipe of a read-pipe transport (0 once it is closing)."""
    pipe = transport.get_extra_info("pipe")
    if pipe is None or transport.is_closing():
        return 0
    with contextlib.suppress(OSError, ValueError):
        got = fcntl.ioctl(pipe.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(got, sys.byteorder)
    return 0


class LaunchedProcess:
    """A running process started by :func:`spawn`; always finish with :meth:`aclose`."""

    def __init__(self, proc: subprocess.Popen[bytes], exited: asyncio.Future[int],
                 spec: LaunchSpec, cgroup: cgroups.Cgroup | None,
                 readers: list[asyncio.Task[None]], sandboxed: bool,
                 transports: list[asyncio.BaseTransport] | None = None,
                 counts: list[plumbing.OutputCount] | None = None) -> None:
        self._proc = proc
        self._transports = transports or []
        self._counts = counts or []          # beside each output transport, in order
        self._exited = exited
        self._spec = spec
        self._cgroup = cgroup
        self._readers = readers
        self._sandboxed = sandboxed
        self._status: ExitStatus | None = None
        self._peak_kb: int | None = None
        self._closed = False
        self._cgroup_removed = False   # once removed, its name may belong to another worker
        self._close_lock = asyncio.Lock()
        self.pid: int = proc.pid
        self._started = peers.start_time(proc.pid)
        if spec.owner is not None:
            REGISTRY.add(self)

    @property
    def owner(self) -> str | None:
        """The component this process belongs to (``LaunchSpec.owner``)."""
        return self._spec.owner

    async def output_taken(self) -> None:
        """Return once every byte the process has written to its stdout/stderr so far has
        reached ``on_output`` (a line still without its newline stays held, as ever): what
        was fed to the line readers, plus what waits in the pipes now. Waits on the readers'
        progress, no polling; at once without ``on_output``."""
        pending = [count.taken_up_to(count.fed + _pipe_unread(transport))
                   for transport, count in zip(self._transports, self._counts, strict=True)]
        await asyncio.gather(*pending)

    def has_member(self, pid: int) -> bool:
        """True if ``pid`` is a live process of this tree: in its cgroup, or else in the session
        the launcher created for it (a session can be left but never joined, so no process of
        another tree can pass). A leader pid reused by another process is told apart by its
        start time."""
        if self._closed:
            return False
        cg = self._live_cgroup
        if cg is not None:
            try:
                return pid in cg.pids()
            except OSError:
                return False
        if self._sandboxed or peers.session_of(pid) != self.pid:
            return False
        leader_start = peers.start_time(self.pid)
        return leader_start is None or leader_start == self._started

    def member_pids(self) -> list[int]:
        """The live processes of this tree (its cgroup, else the leader's descendants)."""
        if self._closed:
            return []
        cg = self._live_cgroup
        if cg is not None:
            try:
                return cg.pids()
            except OSError:
                return []
        if self._status is not None or peers.start_time(self.pid) != self._started:
            return []
        return descendants(self.pid)

    @property
    def returncode(self) -> int | None:
        return self._status.returncode if self._status else None

    @property
    def cgroup(self) -> cgroups.Cgroup | None:
        return self._cgroup

    @property
    def _live_cgroup(self) -> cgroups.Cgroup | None:
        return None if self._cgroup_removed else self._cgroup

    @property
    def status(self) -> ExitStatus | None:
        """The exit status once :meth:`wait` has seen the process end."""
        return self._status

    async def wait(self) -> ExitStatus:
        """Wait until the process ends (output is drained briefly after it)."""
        if self._status is not None:
            return self._status
        rc = await asyncio.shield(self._exited)
        if self._status is None:
            cg = self._live_cgroup
            oom = cg.oom_killed() if cg else False
            if cg:
                self._peak_kb = cg.memory_peak_kb()
            self._status = exit_status(rc, sandboxed=self._sandboxed, oom_killed=oom,
                                       memory_limit_kb=self._spec.limits.memory_kb)
            if cg is not None and not cg.pids():
                # nothing left: remove it now so a caller that forgets aclose leaks nothing
                with contextlib.suppress(OSError):
                    cg.remove()
                    self._cgroup_removed = True
            await self._drain()
        return self._status

    async def _drain(self) -> None:
        if self._readers:
            await asyncio.wait(self._readers, timeout=_DRAIN_AFTER_EXIT_S)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the whole tree (process group and every process in the cgroup).

        In a sandbox the bubblewrap monitor itself is skipped: killing it would SIGKILL the
        workload through ``--die-with-parent`` before it could handle the signal.
        """
        cg = self._live_cgroup
        if not self._sandboxed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        if cg is not None:
            for pid in cg.pids():
                if pid == self.pid or (not self._sandboxed and plumbing.pgid(pid) == self.pid):
                    continue   # the monitor (sandbox), or already signalled with its group
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        elif self._sandboxed and self._status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _tree_alive(self) -> bool:
        cg = self._live_cgroup
        if cg is not None:
            return bool(cg.pids())
        if self._sandboxed or self._cgroup is not None:
            return self._status is None
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _kill_tree(self) -> None:
        if not self._sandboxed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        cg = self._live_cgroup
        if self._status is None:
            # The leader by its pid too (our child, not yet reaped: the pid cannot be another
            # process's): a process that joins its cgroup itself may not have done so yet,
            # and killed before, it never forks anything the cgroup would have to catch.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if cg is not None:
            cg.kill_all()

    def memory_peak_kb(self) -> int | None:
        """Peak memory of the whole tree from its cgroup, or None without a cgroup."""
        cg = self._live_cgroup
        if cg is not None:
            peak = cg.memory_peak_kb()
            if peak is not None:
                self._peak_kb = peak
        return self._peak_kb

    async def aclose(self, grace_s: float = 5.0) -> ExitStatus:
        """SIGTERM the tree, give it ``grace_s``, SIGKILL what is left, reap, remove the cgroup.

        Safe to call twice and after the process has exited.
        """
        async with self._close_lock:
            if self._closed:
                assert self._status is not None
                return self._status
            deadline = time.monotonic() + grace_s
            if self._status is None or self._tree_alive():
                self.send_signal(signal.SIGTERM)
                waiter = asyncio.ensure_future(self.wait())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), grace_s)
                while self._tree_alive() and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(self._kill_tree)
            status = await self.wait()
            if not self._sandboxed and self._live_cgroup is None:
                # SIGKILL is asynchronous: let the group's members finish dying so the tree
                # is really gone when aclose returns (zombies waiting for init do not count).
                settle = time.monotonic() + 2.0
                while time.monotonic() < settle:
                    if not await asyncio.to_thread(plumbing.live_group_members, self.pid):
                        break
                    await asyncio.sleep(0.005)
            for task in self._readers:
                task.cancel()
            await asyncio.gather(*self._readers, return_exceptions=True)
            for transport in self._transports:   # a surviving grandchild may hold the pipe
                transport.close()
            self.memory_peak_kb()
            self._closed = True
            REGISTRY.discard(self)
            cg = self._live_cgroup
            if cg is not None:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(cg.remove)
                self._cgroup_removed = True
            return status


def _resolve_executable(spec: LaunchSpec) -> str:
    exe = spec.argv[0] if spec.argv else ""
    if not exe:
        raise LaunchError("argv: the command is empty; allowed: a program and its arguments")
    if "/" in exe:
        path = exe if os.path.isabs(exe) else os.path.join(spec.cwd, exe)
        if not os.path.exists(path):
            raise LaunchError(f"argv[0]: executable {exe!r} not found")
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            raise LaunchError(f"argv[0]: {exe!r} is not an executable file")
        return path
    found = shutil.which(exe, path=spec.env.get("PATH", os.defpath))
    if found is None:
        raise LaunchError(
            f"argv[0]: executable {exe!r} not found on PATH {spec.env.get('PATH', os.defpath)!r}")
    return found


@functools.cache
def _system_tool(name: str) -> str | None:
    """A program of the base system (``setpriv``, ``env``, ``sh``), found once; None if
    absent. Only system directories are searched: root runs some of them."""
    return shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")


def _setpriv() -> str | None:
    """util-linux's ``setpriv`` (Essential in Debian)."""
    return _system_tool("setpriv")


def _setpriv_argv(setpriv: str, creds: users.Credentials) -> list[str]:
    """The prefix that runs a command as ``creds``: supplementary groups, then gid, then uid
    (what the preexec path does with setgroups/setresgid/setresuid)."""
    groups = ",".join(str(g) for g in creds.groups)
    return [setpriv, f"--reuid={creds.uid}", f"--regid={creds.gid}",
            f"--groups={groups}" if groups else "--clear-groups", "--"]


# What a dynamic loader, libc or a POSIX shell reads from the environment to load code or data
# from a path (glibc's own list of variables it ignores for setuid programs, unsecvars.h, plus
# every LD_*/MALLOC_* one and the shells' start-up variables).
_LOADER_VARIABLES = frozenset({
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
    "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
    "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH", "GLOBIGNORE"})
_LOADER_PREFIXES = ("LD_", "MALLOC_", "BASH_FUNC_")
_LOCALE_VARIABLES = ("LANG", "LANGUAGE", "TZ", "LC_")     # names only; a path is held back


def helper_environment(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``env`` split into what the root helpers (sh, setpriv) may run with and what only the
    program may see: loader, libc and shell variables, and locale or time-zone values that are
    paths (glibc would load files from them)."""
    safe: dict[str, str] = {}
    held: dict[str, str] = {}
    for key, value in env.items():
        if (key in _LOADER_VARIABLES or key.startswith(_LOADER_PREFIXES)
                or (key.startswith(_LOCALE_VARIABLES) and ("/" in value or ".." in value))):
            held[key] = value
        else:
            safe[key] = value
    return safe, held


def _env_tool() -> str | None:
    """coreutils' ``env`` (Essential in Debian)."""
    return _system_tool("env")


@functools.cache
def _shell() -> str | None:
    """``/bin/sh`` when it is dash (Debian's, Raspberry Pi OS's), found once; else None.

    Why only dash: the helper shell runs as root and hands its environment on, and dash reads
    nothing from the environment when it is not interactive and adds only PWD (which the
    script puts back as it was). Other shells (bash as sh) import more and export ``_``: they
    get the preexec_fn path instead.
    """
    sh = _system_tool("sh")
    return sh if sh is not None and os.path.basename(os.path.realpath(sh)) == "dash" else None


def _helpers(env: dict[str, str], creds: users.Credentials | None,
             self_join: tuple[Path, ...] | None,
             program: str) -> tuple[list[str], dict[str, str]] | None:
    """The commands exec'd in front of the program instead of a preexec_fn, and the
    environment they run with; None when none are needed or one is missing (then the
    preexec_fn path does the work).

    Root runs the shell and setpriv: they must not see what the function's environment says
    to a dynamic loader, libc or a shell (an LD_LIBRARY_PATH naming a directory the function
    can write would otherwise hand it root). Those variables reach the program only, through
    env(1) run as the program's user, after setpriv (so their values are on env(1)'s command
    line for the moment it runs: search paths and locale names, which are not secrets; every
    other variable travels in the environment only).
    """
    if not self_join and creds is None:
        return None
    shell = _shell() if self_join else None
    setpriv = _setpriv() if creds is not None else None
    if (self_join and shell is None) or (creds is not None and setpriv is None):
        return None
    safe, held = helper_environment(env)
    env_tool = _env_tool() if held else None
    if held and (env_tool is None or "=" in program):
        return None              # (env(1) would read a program path with "=" as a variable)
    prefix: list[str] = []
    if self_join and shell is not None:
        prefix += _self_join_argv(shell, self_join, [], env.get("PWD"))
    if creds is not None and setpriv is not None:
        prefix += _setpriv_argv(setpriv, creds)
    if held and env_tool is not None:
        prefix += [env_tool, "--", *(f"{k}={v}" for k, v in held.items())]
    return prefix, safe


def _self_join_argv(shell: str, files: tuple[Path, ...], argv: list[str],
                    pwd: str | None = None) -> list[str]:
    """``sh -c 'echo 0 >f1 && ... && exec "$@"' sprig-cgroup-join argv...``: the process moves
    itself into its cgroup (see Cgroup.self_join_files), then becomes ``argv``. If a write
    fails, it says so on stderr (the function's log) and exits 125 before running anything."""
    steps = " && ".join(f"echo 0 >{shlex.quote(str(f))}" for f in files)
    # dash exports PWD (the directory it starts in): the program gets the environment's own
    restore = "unset PWD" if pwd is None else f"export PWD={shlex.quote(pwd)}"
    script = (f"{{ {steps}; }} || {{ echo 'sprig: cannot join the cgroup' "
              f"{shlex.quote(str(files[0].parent))} >&2; exit 125; }}; {restore}; "
              f"exec \"$@\"")
    # -p: a bash installed as sh imports no functions and reads no start-up file from the
    # environment (dash does neither anyway)
    return [shell, "-p", "-c", script, "sprig-cgroup-join", *argv]


def _make_preexec(join_files: tuple[str, ...],
                  creds: users.Credentials | None) -> Callable[[], None] | None:
    """The code run in the child between fork and exec: join the cgroup, then drop to the user.

    Joining first (as root) is required: an unprivileged process may not move itself into a
    cgroup. Only ``os`` calls, all values precomputed, to stay safe after fork.
    """
    if not join_files and creds is None:
        return None
    groups = list(creds.groups) if creds else []

    def preexec() -> None:
        pid = str(os.getpid()).encode()
        for f in join_files:
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if creds is not None:
            os.setgroups(groups)
            os.setresgid(creds.gid, creds.gid, creds.gid)
            os.setresuid(creds.uid, creds.uid, creds.uid)

    return preexec


def _close_pipe(fds: tuple[int, int] | None) -> None:
    for fd in fds or ():
        with contextlib.suppress(OSError):
            os.close(fd)


def _join_tree(cgroup: cgroups.Cgroup, pid: int) -> None:
    """Move ``pid`` and every descendant into ``cgroup`` (bwrap blocked on --block-fd).

    The parent first: a child it forks after the move is born inside; one forked before the
    move is listed in its children afterwards (fork and migration exclude each other).
    """
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            cgroup.add(p)
        except OSError as e:
            if plumbing.alive(p):
                raise LaunchError(f"cannot move process {p} into cgroup {cgroup.path}: {e}"
                                  ) from None
            continue   # it already exited (bwrap failed early); wait() reports it
        pending.extend(plumbing.children(p))


def _create_cgroup(spec: LaunchSpec, driver: cgroups.CgroupDriver | None,
                   read_only_devices: tuple[tuple[str, int, int], ...] = ()) -> cgroups.Cgroup:
    if driver is None:
        what = ("GreengrassContainer" if spec.container_mode is ContainerMode.GREENGRASS_CONTAINER
                else "systemResourceLimits")
        raise SandboxUnavailable(
            f"no usable memory cgroup on this device (needed for {what}): mount a writable "
            "cgroup v1 memory controller or a cgroup v2 hierarchy with the memory controller "
            "(kernel parameters `cgroup_enable=memory cgroup_memory=1`, and run the core as "
            "root); or use NoContainer without systemResourceLimits")
    # One cgroup per process: the caller's name (per worker) or a unique one, behind this
    # core's prefix so that a restarted core finds what a killed one left.
    name = _cgroup_prefix[0] + (
        spec.cgroup_name or f"p{os.getpid()}-{next(_counter)}-{time.monotonic_ns()}")
    try:
        return driver.create(name, spec.limits.memory_kb, spec.limits.cpus,
                             read_only_devices=read_only_devices)
    except (OSError, ValueError) as e:
        raise LaunchError(f"cgroup for {spec.argv[0]!r}: {e}") from None


_driver_cache: list[cgroups.CgroupDriver | None] = []
_cgroup_prefix: list[str] = [""]


def set_cgroup_prefix(prefix: str) -> None:
    """Name every cgroup this process creates ``<prefix><name>`` (the core passes a short
    digest of its root: cores sharing the hierarchy never collide, and a restarted core can
    remove exactly the cgroups its killed predecessor left)."""
    _cgroup_prefix[0] = prefix


def sweep_own_cgroups() -> int:
    """Remove this core's process-less cgroups (after a crash); how many went."""
    driver = default_driver()
    if driver is None or not _cgroup_prefix[0]:
        return 0
    return len(driver.sweep(older_than_s=0.0, prefix=_cgroup_prefix[0]))


def default_driver() -> cgroups.CgroupDriver | None:
    """The host's cgroup driver (detected once; stale leftovers of dead cores swept then)."""
    if not _driver_cache:
        driver = cgroups.detect()
        if driver is not None:
            with contextlib.suppress(OSError):
                driver.sweep()
        _driver_cache.append(driver)
    return _driver_cache[0]


async def spawn(spec: LaunchSpec, *, on_output: OutputCallback | None = None,
                stdin: bytes | None = None, pass_fds: tuple[int, ...] = (),
                cgroup_driver: cgroups.CgroupDriver | None = None) -> LaunchedProcess:
    """Start ``spec``; raise LaunchError (or SandboxUnavailable) if it cannot be started.

    ``on_output(stream, line)`` receives each line of "stdout"/"stderr" (no newline; lines
    longer than 64 KB in chunks) on the event loop. ``cgroup_driver`` overrides detection.
    """
    exe = _resolve_executable(spec)
    if not spec.cwd.is_dir():
        raise LaunchError(f"cwd: working directory {str(spec.cwd)!r} does not exist")
    creds = users.credentials_for(spec.run_as)
    sandboxed = spec.container_mode is ContainerMode.GREENGRASS_CONTAINER
    driver = cgroup_driver if cgroup_driver is not None else default_driver()
    argv: list[str] = [exe, *spec.argv[1:]]
    cwd = str(spec.cwd)
    ro_devices: tuple[tuple[str, int, int], ...] = ()
    if sandboxed:
        from sprig.launcher import sandbox

        inside = creds
        if spec.sandbox_uid is not None and creds is not None and creds.uid != 0:
            creds = creds.as_host_uid(spec.sandbox_uid)
        plan = await asyncio.to_thread(sandbox.prepare, spec, exe, creds, inside)
        argv, cwd, ro_devices = plan.argv, "/", plan.read_only_devices
        if ro_devices and driver is not None and "devices" not in driver.controllers():
            raise SandboxUnavailable(
                "devices: read-only devices need the cgroup v1 devices controller, which this "
                f"device lacks (cgroup v{driver.version}); allowed here: permission rw, or "
                "containerMode NoContainer")
    cgroup = _create_cgroup(spec, driver, ro_devices) if needs_cgroup(spec) else None
    # How the process gets into its cgroup and becomes its user, fastest first:
    # * helpers exec'd in front of it (see _helpers): on cgroup v1 it moves itself (a shell
    #   writes 0 to each hierarchy's `tasks`: no global lock, no RCU grace period, and bwrap,
    #   started after, forks every process of the sandbox inside); setpriv drops the user. No
    #   Python runs between fork and exec, so Popen vforks;
    # * else a sandbox is moved (bwrap and its child) while bwrap, started with --block-fd,
    #   builds it and waits (a grace period that overlaps the sandbox set-up), and a plain
    #   process joins and drops the user between fork and exec (preexec_fn).
    self_join = cgroup.self_join_files() if cgroup is not None else None
    # a plain process that cannot move itself joins in a preexec_fn: no helpers then
    fast = (None if cgroup is not None and not self_join and not sandboxed
            else _helpers(spec.env, creds, self_join, argv[0]))
    block: tuple[int, int] | None = (
        os.pipe() if sandboxed and cgroup and not (fast and self_join) else None)
    if block is not None:
        argv = [argv[0], "--block-fd", str(block[0]), *argv[1:]]
        pass_fds = (*pass_fds, block[0])
    env = spec.env
    join: tuple[str, ...] = ()
    if fast is not None:
        prefix, env = fast
        argv = [*prefix, *argv]
        creds = None
    elif cgroup is not None and block is None:
        join = tuple(str(f) for f in cgroup.join_files())
    preexec = _make_preexec(join, creds)
    out = subprocess.PIPE if on_output else subprocess.DEVNULL

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=out,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            start_new_session=True, pass_fds=pass_fds, close_fds=True, preexec_fn=preexec)

    try:
        # With a preexec_fn (cgroup join) the child takes milliseconds to reach exec and
        # Popen blocks until it does: in a thread then. A vfork returns at once.
        proc = await asyncio.to_thread(popen) if preexec is not None else popen()
    except subprocess.SubprocessError as e:
        _close_pipe(block)
        if cgroup:
            cgroup.remove()
        who = f" as {spec.run_as}" if spec.run_as else ""
        raise LaunchError(
            f"cannot start {spec.argv[0]!r}{who}: joining its cgroup or switching user failed ({e})"
        ) from None
    except OSError as e:
        _close_pipe(block)
        if cgroup:
            cgroup.remove()
        raise LaunchError(f"cannot start {spec.argv[0]!r}: {e.strerror}") from None
    if block is not None:
        assert cgroup is not None
        os.close(block[0])
        try:
            await asyncio.to_thread(_join_tree, cgroup, proc.pid)
        except BaseException:
            os.close(block[1])   # bwrap reads EOF and would go on: kill it first
            with contextlib.suppress(OSError):
                cgroup.kill_all()
            proc.kill()
            await asyncio.to_thread(proc.wait)
            with contextlib.suppress(OSError):
                cgroup.remove()
            raise
        with contextlib.suppress(OSError):
            os.write(block[1], b"x")
        os.close(block[1])
    exited = plumbing.watch_exit(proc)
    readers: list[asyncio.Task[None]] = []
    transports: list[asyncio.BaseTransport] = []
    counts: list[plumbing.OutputCount] = []
    if on_output is not None:
        assert proc.stdout is not None and proc.stderr is not None
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            count = plumbing.OutputCount()
            stream, transport = await plumbing.stream_reader(pipe, count)
            transports.append(transport)
            counts.append(count)
            readers.append(asyncio.create_task(
                plumbing.read_lines(stream, name, on_output, count)))
    if stdin is not None:
        assert proc.stdin is not None
        feed = asyncio.to_thread(plumbing.write_all, proc.stdin, stdin)
        readers.append(asyncio.create_task(feed))
    return LaunchedProcess(proc, exited, spec, cgroup, readers, sandboxed, transports, counts)
