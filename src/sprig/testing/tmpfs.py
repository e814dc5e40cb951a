"""A real small filesystem that fills up: a tmpfs mount, for tests of full-disk behaviour.

Why a real mount rather than a mocked ``write``: ENOSPC then comes from the kernel for every
writer at once (SQLite, log files, a function's work directory), exactly as on a device whose
disk is full. Mounting needs root (the test machine runs as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


class MountError(RuntimeError):
    """tmpfs cannot be mounted here (not root, or no mount namespace rights)."""


@contextlib.contextmanager
def small_tmpfs(size: str = "8m", prefix: str = "sprig-disk-", *,
                inodes: int | None = None) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (mode 0755, under /tmp so a run-as user can reach it),
    unmounted and removed afterwards. ``inodes`` caps the number of files (and directories):
    past it, creating one fails with ENOSPC too."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    options = f"size={size},mode=755" + (f",nr_inodes={inodes}" if inodes else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(base)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise MountError(f"cannot mount a tmpfs on {base}: {done.stderr.strip()}")
    try:
        yield base
    finally:
        subprocess.run(["umount", "-l", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write ``directory/name`` until the filesystem refuses (ENOSPC); returns the file.
    Deleting it gives the space back."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                break
        while True:                      # the last partial block, byte runs down to 1
            try:
                os.write(fd, b"\0" * 512)
            except OSError:
                break
    finally:
        os.close(fd)
    return path
