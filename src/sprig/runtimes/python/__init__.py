"""Sprig's own Python runtime: ``bootstrap.py`` runs a ``package.module.function`` handler.

The bootstrap is a single stdlib-only script (Python 2.7 and 3.7+) run by the function's own
interpreter, so it lives here as a data file: :func:`bootstrap_path` finds it, and
:func:`compiled_bootstrap` gives each interpreter its bytecode once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

from sprig.assets import asset

# Run by the function's interpreter (2.7 or 3.x), so its magic number is the one that loads.
_COMPILE = ("import py_compile, sys; "
            "py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)")
_compiled: dict[tuple[str, str], Path] = {}


def bootstrap_path() -> Path:
    """The bootstrap script handed to ``pythonX.Y -u`` (the core's published copy, readable by
    every run-as user; see :mod:`sprig.assets`)."""
    return asset("runtimes/python/bootstrap.py")


def _root_controlled(path: str) -> bool:
    """True if only root can change ``path``: its real file and every directory above it are
    owned by root, and none is writable by anyone else (a sticky directory such as /tmp
    excepted: there nobody can replace what root owns)."""
    real = Path(os.path.realpath(path))
    try:
        for p in (real, *real.parents):
            st = p.stat()
            sticky = p != real and st.st_mode & stat.S_ISVTX
            if st.st_uid != 0 or (st.st_mode & 0o022 and not sticky):
                return False
    except OSError:
        return False
    return True


def compiled_bootstrap(interpreter: str) -> Path:
    """What ``interpreter`` should run: the bootstrap's bytecode compiled by that interpreter,
    else the source.

    A script named on the command line is compiled on every start and never cached (only
    imported modules are): for the bootstrap that is ~4 ms of each cold start. A ``.pyc`` file
    runs as a script just as well, so the bytecode is made once per interpreter, by the
    interpreter itself (the magic number must be its own), and kept in the published assets'
    ``__pycache__`` (world-readable, and inside the directory a container already mounts). Its
    name carries the interpreter's path, size and modification time, so an upgraded
    interpreter compiles afresh. Any failure leaves the source, which always works.
    """
    source = bootstrap_path()
    try:
        st = os.stat(interpreter)
    except OSError:
        return source
    real = os.path.realpath(interpreter)
    tag = hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    key = (tag, str(source))
    hit = _compiled.get(key)
    if hit is not None and hit.is_file():
        return hit
    if not _root_controlled(interpreter):
        return source          # root runs the compiler: only an interpreter only root can change
    cache = source.parent / "__pycache__"
    target = cache / f"bootstrap.{tag}.pyc"
    if not target.is_file():
        try:
            cache.mkdir(mode=0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".bootstrap-", suffix=".pyc", dir=cache)
            os.close(fd)
            try:
                subprocess.run([interpreter, "-c", _COMPILE, str(source), tmp], check=True,
                               capture_output=True, timeout=60, env={"PATH": os.defpath})
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except (OSError, subprocess.SubprocessError):
            return source
    _compiled[key] = target
    return target
