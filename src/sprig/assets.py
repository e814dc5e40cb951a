"""Files Sprig hands to function processes: the runtime bootstraps and the Core SDK v1 shims.

Functions run as an unprivileged user. When Sprig is installed somewhere that user cannot read
(a virtualenv under root's private home, say), the worker could not load its bootstrap. So the
core publishes a copy of these files under its root directory (``<root>/runtime-assets/<digest>``,
world-readable, one directory per content digest so upgrades never change files in use) and
every path to them is asked of :func:`asset`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: what is published, relative to the package directory
PUBLISHED = ("runtimes/python", "runtimes/nodejs", "shims/python", "shims/nodejs")
_IGNORE = shutil.ignore_patterns("_tests", "__pycache__", "*.pyc")

_public_dir: Path | None = None


def asset(relative: str) -> Path:
    """Where function processes find ``relative`` (e.g. ``runtimes/python/bootstrap.py``)."""
    base = _public_dir if _public_dir is not None else PACKAGE_DIR
    return base / relative


def _files() -> list[Path]:
    out: list[Path] = []
    for rel in PUBLISHED:
        top = PACKAGE_DIR / rel
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in ("_tests", "__pycache__")]
            out.extend(Path(dirpath) / f for f in filenames if not f.endswith(".pyc"))
    return sorted(out)


def digest() -> str:
    h = hashlib.sha256()
    for path in _files():
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def publish(root: Path) -> Path:
    """Copy the assets under ``root`` (once per content) and use that copy from now on."""
    global _public_dir
    target = root / "runtime-assets" / digest()
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)
        tmp = Path(tempfile.mkdtemp(prefix=".assets-", dir=target.parent))
        try:
            for rel in PUBLISHED:
                shutil.copytree(PACKAGE_DIR / rel, tmp / rel, ignore=_IGNORE, symlinks=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)     # a full disk: leave no half copy
            raise
        for dirpath, _dirnames, filenames in os.walk(tmp):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    p.chmod(0o755 if os.access(p, os.X_OK) else 0o644)
        try:
            tmp.rename(target)
        except OSError:          # another core published the same content first
            shutil.rmtree(tmp, ignore_errors=True)
    _public_dir = target
    return target
