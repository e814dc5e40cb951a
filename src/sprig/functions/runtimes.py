"""Runtime names (``python3.9``, ``nodejs18.x``, ``java11``, ``provided.al2``) → how to start them.

The rule for Python, documented for users: ``pythonX.Y`` runs on that exact interpreter if the
device has it. Otherwise Sprig picks the nearest installed Python 3 that is at least 3.7: the
closest newer minor version first (code written for 3.8 nearly always runs on 3.9), else the
closest older one, and reports a warning (shown in the log and in ``component details``).
``python2.7`` needs an installed Python 2.7. Interpreters are found as real executables (ELF
files, never pyenv's shell shims) that every user can run (run-as users are unprivileged), in
``/usr/local/bin``, ``/usr/bin``, the core's own Python prefix, the directories on ``PATH`` and
pyenv's ``versions/*/bin``, first found wins.

Node.js (``nodejs10.x`` ... ``nodejs22.x``) runs on the installed ``node``; Java (``java8``,
``java11``, ``java17``, ``java21``) on the installed JVM if its major version is at least the
runtime's; ``provided``, ``provided.al2`` and ``provided.al2023`` run the function's own
``bootstrap`` executable. The argv of Node.js and Java workers comes from their runtime packages
(``sprig.runtimes.nodejs.launch_argv`` / ``sprig.runtimes.java.launch_argv``).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sprig.errors import LaunchError, ValidationError
from sprig.runtime_api import wire
from sprig.runtimes.python import bootstrap_path as python_bootstrap
from sprig.runtimes.python import compiled_bootstrap

PYTHON_RUNTIMES = (*(f"python3.{m}" for m in range(7, 14)), "python2.7")
NODE_RUNTIMES = tuple(f"nodejs{v}.x" for v in (10, 12, 14, 16, 18, 20, 22))
JAVA_RUNTIMES = {"java8": 8, "java11": 11, "java17": 17, "java21": 21}
PROVIDED_RUNTIMES = ("provided", "provided.al2", "provided.al2023")
ALL_RUNTIMES = PYTHON_RUNTIMES + NODE_RUNTIMES + tuple(JAVA_RUNTIMES) + PROVIDED_RUNTIMES


@dataclass(frozen=True)
class ResolvedRuntime:
    """How to start a worker of one runtime on this device."""

    name: str
    argv: tuple[str, ...]
    read_only_paths: tuple[Path, ...] = ()       # interpreter prefix, bootstrap dir
    env: dict[str, str] = field(default_factory=dict)
    warning: str | None = None
    #: False: the runtime speaks only the worker's Unix socket (Sprig's Python and Node.js
    #: runtimes), so its session opens no TCP port and sets no AWS_LAMBDA_RUNTIME_API.
    needs_tcp: bool = True


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def world_executable(path: Path) -> bool:
    """True if any user can run ``path``: the file is o+x and every directory on its real
    path is o+x. Functions run as an unprivileged user (sprig_user), so an interpreter under
    a private home (e.g. pyenv in /root) cannot be theirs."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & 0o001:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


def _search_dirs() -> list[Path]:
    # System locations first: they are what a device has and what any run-as user can reach.
    dirs = [Path("/usr/local/bin"), Path("/usr/bin"), Path(sys.base_prefix) / "bin"]
    dirs += [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        dirs += sorted(p / "bin" for p in pyenv.iterdir())
    seen: set[Path] = set()
    out = []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


_PY_NAME = re.compile(r"^python(\d)\.(\d+)$")


def installed_pythons(dirs: Iterable[Path] | None = None) -> dict[tuple[int, int], Path]:
    """Installed ``pythonX.Y`` interpreters (real ELF executables), first found wins."""
    found: dict[tuple[int, int], Path] = {}
    for d in _search_dirs() if dirs is None else dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            m = _PY_NAME.match(name)
            if not m:
                continue
            version = (int(m.group(1)), int(m.group(2)))
            if version in found:
                continue
            real = Path(os.path.realpath(d / name))
            if (real.is_file() and os.access(real, os.X_OK) and _is_elf(real)
                    and world_executable(real)):
                found[version] = d / name
    return found


def choose_python(wanted: tuple[int, int], installed: Sequence[tuple[int, int]],
                  ) -> tuple[int, int] | None:
    """The documented rule: exact, else the closest newer ≥ 3.7, else the closest older ≥ 3.7."""
    if wanted in installed:
        return wanted
    if wanted[0] != 3:
        return None
    usable = sorted(v for v in installed if v[0] == 3 and v[1] >= 7)
    newer = [v for v in usable if v > wanted]
    if newer:
        return newer[0]
    older = [v for v in usable if v < wanted]
    return older[-1] if older else None


def _python(name: str, pythons: dict[tuple[int, int], Path] | None) -> ResolvedRuntime:
    major, minor = (int(x) for x in name[len("python"):].split("."))
    pythons = installed_pythons() if pythons is None else pythons
    chosen = choose_python((major, minor), list(pythons))
    if chosen is None:
        have = ", ".join(f"python{a}.{b}" for a, b in sorted(pythons)) or "none"
        if major == 2:
            # Python 2 code (print statements, str/bytes) does not run on Python 3: no fallback.
            raise ValidationError("runtime", f"{name} needs an installed Python {major}.{minor} "
                                  "interpreter, and Python 2 code does not run on Python 3",
                                  value=name, allowed=f"install python{major}.{minor} (found: "
                                  f"{have}), or port the function to a python3.x runtime")
        raise ValidationError("runtime", f"the device has no Python interpreter for {name}",
                              value=name, allowed=f"an installed Python (found: {have}); "
                              f"install {name} or a Python 3 ≥ 3.7")
    exe = pythons[chosen]
    warning = None
    if chosen != (major, minor):
        warning = (f"runtime {name} is not installed; running on python{chosen[0]}.{chosen[1]} "
                   f"({exe}) instead")
    real = Path(os.path.realpath(exe))
    prefix = real.parent.parent
    boot = python_bootstrap()
    script = compiled_bootstrap(str(exe))
    return ResolvedRuntime(name, (str(exe), "-u", str(script)), (prefix, boot.parent),
                           {wire.ENV_FRAMES: "1"}, warning, needs_tcp=False)


def _node(name: str, code_dir: Path) -> ResolvedRuntime:
    node = shutil.which("node")
    if node is None:
        raise ValidationError("runtime", f"{name} needs Node.js, which is not installed",
                              value=name, allowed="install Node.js (the node executable)")
    nodejs = importlib.import_module("sprig.runtimes.nodejs")
    real = Path(os.path.realpath(node))
    argv = tuple(nodejs.launch_argv(str(real)))
    boot = Path(nodejs.bootstrap_path()).parent
    env = {"NODE_PATH": nodejs.node_path(code_dir)} if hasattr(nodejs, "node_path") else {}
    return ResolvedRuntime(name, argv, (real.parent.parent, boot), env, needs_tcp=False)


def java_major(java: Path) -> int | None:
    """The JVM's major version from its ``release`` file (``JAVA_VERSION="17.0.15"``)."""
    home = Path(os.path.realpath(java)).parent.parent
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    m = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', text, re.M)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _java(name: str, code_dir: Path, handler: str, memory_mb: int,
          cache_dir: Path | None, build_jar: bool = True) -> ResolvedRuntime:
    need = JAVA_RUNTIMES[name]
    java = shutil.which("java")
    if java is None:
        raise ValidationError("runtime", f"{name} needs a Java {need} or newer JVM, "
                              "and none is installed", value=name,
                              allowed=f"install a JDK/JRE ≥ {need}")
    real = Path(os.path.realpath(java))
    jmod = importlib.import_module("sprig.runtimes.java")
    major = java_major(real)
    if major is None:
        try:
            major = int(jmod.java_major_version(str(real)))
        except LaunchError as e:
            raise ValidationError("runtime", f"{name}: {e}", value=name,
                                  allowed=f"a working JVM ≥ {need}") from None
    if major < need:
        raise ValidationError("runtime", f"{name} needs Java {need} or newer, the device has "
                              f"Java {major}", value=name, allowed=f"install a JVM ≥ {need}")
    cache = cache_dir or Path(tempfile.gettempdir()) / "sprig-cache"
    if build_jar:
        try:
            jar = Path(jmod.ensure_runtime_jar(cache))
        except LaunchError as e:
            raise ValidationError("runtime", f"{name}: {e}", value=name,
                                  allowed="a JDK (javac) to build Sprig's Java runtime once"
                                  ) from None
    else:
        jar = Path(jmod.runtime_jar_path(cache))
        if not jar.is_file() and shutil.which("javac") is None:
            raise ValidationError("runtime", f"{name}: Sprig's Java runtime jar is not built "
                                  f"yet ({jar}) and javac was not found on PATH", value=name,
                                  allowed="a JDK (javac) to build Sprig's Java runtime once")
    argv = tuple(jmod.launch_argv(str(real), jar, code_dir, handler, memory_mb))
    return ResolvedRuntime(name, argv, (real.parent.parent, jar.parent))


def _provided(name: str, code_dir: Path) -> ResolvedRuntime:
    boot = code_dir / "bootstrap"
    if not boot.is_file() or not os.access(boot, os.X_OK):
        raise ValidationError("runtime", f"a {name} function must contain an executable "
                              "file named bootstrap", value=str(boot),
                              allowed="an executable bootstrap at the root of the code")
    return ResolvedRuntime(name, (str(boot),))


def resolve(runtime: str, code_dir: Path, *, handler: str = "", memory_mb: int = 0,
            cache_dir: Path | None = None,
            pythons: dict[tuple[int, int], Path] | None = None,
            build_jar: bool = True) -> ResolvedRuntime:
    """How to start a ``runtime`` worker for the code in ``code_dir`` on this device.

    ``handler`` and ``memory_mb`` matter for Java (its argv names the handler and sets -Xmx);
    ``cache_dir`` is where Java's runtime jar is built once (the root's ``cache``).

    Building that jar runs javac (seconds): on an event loop, call this in a thread
    (:meth:`sprig.functions.function.Function.create` does). ``build_jar=False`` is for checks
    that start nothing (deployment validation): it does not build, only requires javac when the
    jar is missing, and names the jar the build will produce.

    Raises:
        ValidationError: unknown runtime, or one the device cannot run (names what is missing).
    """
    if runtime in PYTHON_RUNTIMES:
        return _python(runtime, pythons)
    if runtime in NODE_RUNTIMES:
        return _node(runtime, code_dir)
    if runtime in JAVA_RUNTIMES:
        return _java(runtime, code_dir, handler, memory_mb, cache_dir, build_jar)
    if runtime in PROVIDED_RUNTIMES:
        return _provided(runtime, code_dir)
    raise ValidationError("runtime", "is not a supported Lambda runtime", value=runtime,
                          allowed=", ".join(ALL_RUNTIMES))
