"""File access for a root process that must never follow a symbolic link.

The core runs as root and reads directories that other users may have filled (an
``--artifact-dir``, a recipe directory, a component's own staged files): a path-based ``open``
would follow a link planted anywhere along the way (``<dir>/<name> -> /etc``) and copy a root-only
file into a component's hands. So every path below a directory the operator named is walked one
component at a time from a directory descriptor, with ``O_NOFOLLOW``; a file must be a regular
file (``fstat`` on the descriptor: a FIFO would hang the core, a device never ends), and what is
read is bounded.

Errors are :class:`Refused` (the path, what it is, and for a link where it points); callers turn
them into ValidationErrors naming the field that led there.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sprig.errors import SprigError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 1 << 20


class Refused(SprigError):
    """A path the core will not use: a link, or not the kind of file expected."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path} {problem}")


class OverBudget(SprigError):
    """A copy stopped because it would pass its byte budget: ``written`` bytes were written,
    the next read would have made it ``attempted``."""

    def __init__(self, written: int, attempted: int) -> None:
        self.written = written
        self.attempted = attempted
        super().__init__(f"stopped after {written} bytes")


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def _explain(dir_fd: int, name: str, shown: str, want: str) -> Refused | None:
    """Why ``name`` could not be opened as ``want``: a link (and its target) or another kind."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            target = "?"
        return Refused(shown, f"is a symbolic link to {target}: the core does not follow links")
    return Refused(shown, f"is {kind_of(st.st_mode)}, not {want}")


def open_dir(path: str) -> int:
    """The directory the operator named (links in its own path are the operator's choice)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_subdir(dir_fd: int, name: str, shown: str) -> int:
    """``name`` in ``dir_fd`` as a directory; raises Refused for a link or a non-directory,
    FileNotFoundError when it is absent."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            refused = _explain(dir_fd, name, shown, "a directory")
            if refused is not None:
                raise refused from None
        raise


def open_file(dir_fd: int, name: str, shown: str) -> int:
    """``name`` in ``dir_fd`` as a regular file, opened for reading; raises Refused for a link
    or any other kind of file, FileNotFoundError when it is absent."""
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            refused = _explain(dir_fd, name, shown, "a regular file")
            if refused is not None:
                raise refused from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Refused(shown, f"is {kind_of(mode)}, not a regular file")
    return fd


def open_below(top_fd: int, parts: Sequence[str], shown: str) -> int:
    """The regular file ``top/parts[0]/…/parts[-1]``, each component checked."""
    fd = top_fd
    try:
        for i, part in enumerate(parts[:-1]):
            next_fd = open_subdir(fd, part, "/".join([shown, *parts[:i + 1]]))
            if fd != top_fd:
                os.close(fd)
            fd = next_fd
        return open_file(fd, parts[-1], "/".join([shown, *parts]))
    finally:
        if fd != top_fd:
            os.close(fd)


@contextmanager
def opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def read_bounded(fd: int, limit: int) -> bytes | None:
    """The whole file, or None if it holds more than ``limit`` bytes (nothing more is read)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)


def copy_bounded(src_fd: int, dst_fd: int, budget: int) -> int:
    """Copy until the end of ``src_fd``; raises OverBudget instead of writing past ``budget``
    bytes (a source that grows while it is copied is still stopped)."""
    written = 0
    while True:
        chunk = os.read(src_fd, min(CHUNK, budget - written + 1))
        if not chunk:
            return written
        if written + len(chunk) > budget:
            raise OverBudget(written, written + len(chunk))
        view = memoryview(chunk)
        while view:
            n = os.write(dst_fd, view)
            view = view[n:]
        written += len(chunk)


def create_file(dir_fd: int, name: str) -> int:
    """A new file ``name`` in ``dir_fd`` (FileExistsError if anything is there, link included)."""
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600, dir_fd=dir_fd)
