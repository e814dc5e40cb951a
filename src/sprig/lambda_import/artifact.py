"""Package the function code as ``lambda-artifact.zip`` and compute its Greengrass digest.

Three inputs: a Lambda ``.zip`` (kept byte for byte: it is what AWS stores), a directory (zipped
deterministically — sorted entries, fixed timestamps, normalised modes — so importing the same
tree twice gives the same digest), or a Java ``.jar`` (wrapped in a zip holding just the jar, so
it unarchives as ``<decompressedPath>/lambda-artifact/<name>.jar``: a ZIP artifact unarchives
into a directory named after the archive, and its entries go directly under it).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sprig.lambda_import import checks as c
from sprig.recipe.ziparchive import ZipRefused, inspect

FIXED_DATE = (1980, 1, 1, 0, 0, 0)   # the earliest date a zip can hold
CODE_SOURCE = "code"


class CodeKind(StrEnum):
    ZIP = "zip"
    DIRECTORY = "directory"
    JAR = "jar"


@dataclass(frozen=True)
class Artifact:
    data: bytes
    kind: CodeKind

    @property
    def digest(self) -> str:
        return greengrass_digest(self.data)


def greengrass_digest(data: bytes) -> str:
    """Base64 (standard alphabet, padded) of the SHA-256, as Greengrass writes ``Digest``."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.create_system = 3  # Unix, so the mode bits below are honoured when unarchiving
    info.external_attr = (mode & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


LINKS_ALLOWED = ("regular files and directories: replace the link with what it points to "
                 "(cp -L, or zip the code yourself without --symlinks)")


def _lstat(dir_fd: int, name: str, full: Path) -> os.stat_result:
    """The entry itself; a symbolic link is refused, naming where it points."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=dir_fd)
        raise c.fail(str(full), f"is a symbolic link to {target}: links are not followed",
                     CODE_SOURCE, value=target, allowed=LINKS_ALLOWED)
    return st


def _read_regular(dir_fd: int, name: str, full: Path) -> tuple[int, bytes] | None:
    """(mode, bytes) of a regular file, read without following a link; None for a FIFO,
    socket or device (skipped, as before)."""
    try:
        st = _lstat(dir_fd, name, full)
        if not stat.S_ISREG(st.st_mode):
            return None
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError as exc:
        raise c.fail(str(full), f"cannot read the file: {exc.strerror}",
                     CODE_SOURCE, has_value=False) from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None       # swapped for something else since it was looked at
        return st.st_mode, f.read()


def zip_directory(root: Path) -> bytes:
    """Zip a directory tree deterministically. Executable files keep 0755 (a ``provided``
    function's ``bootstrap`` must stay executable), others get 0644; empty directories are
    kept; FIFOs, sockets and devices are left out. A symbolic link is refused, naming where
    it points: the import may run as root, and a link to a root-only file would put that file
    in the function's artifact. The tree is walked by directory descriptors (``os.fwalk``), so
    a link swapped in while it is read is not followed either."""
    found: list[tuple[str, list[tuple[str, int, bytes | None]]]] = []
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        members: list[tuple[str, int, bytes | None]] = []
        for name in dirnames:
            _lstat(dir_fd, name, Path(dirpath) / name)       # a link to a directory: refused
        if not filenames and not dirnames and rel_dir != Path("."):
            members.append((rel_dir.as_posix() + "/", stat.S_IFDIR | 0o755, None))
        for fname in sorted(filenames):
            got = _read_regular(dir_fd, fname, Path(dirpath) / fname)
            if got is None:
                continue
            mode = 0o755 if got[0] & 0o111 else 0o644
            members.append(((rel_dir / fname).as_posix(), stat.S_IFREG | mode, got[1]))
        found.append((dirpath, members))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for _, members in sorted(found, key=lambda item: item[0]):
            for name, mode, data in members:
                zf.writestr(_entry(name, mode), data if data is not None else b"")
    return buf.getvalue()


def wrap_jar(jar: Path, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_entry(jar.name, stat.S_IFREG | 0o644), data)
    return buf.getvalue()


def _check_zip(path: Path, data: bytes) -> None:
    """The deployment will unpack it as root: refuse now what the core would refuse then
    (entries outside the archive, links, special files, file/directory clashes)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            inspect(zf)
    except zipfile.BadZipFile as exc:
        raise c.fail(str(path), "is not a zip archive", CODE_SOURCE, has_value=False,
                     allowed="a Lambda deployment package (.zip), a .jar or a directory",
                     ) from exc
    except ZipRefused as exc:
        raise c.fail(str(path), f"holds an entry the core will not unpack: {exc.problem}",
                     CODE_SOURCE, value=exc.entry, allowed=exc.allowed) from None


def load_code(path: Path) -> Artifact:
    """Read the code from ``path`` (zip, jar or directory) into the artifact to write."""
    if path.is_dir():
        return Artifact(zip_directory(path), CodeKind.DIRECTORY)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise c.fail(str(path), f"cannot read the code: {exc.strerror}", CODE_SOURCE,
                     has_value=False,
                     allowed="a Lambda deployment package (.zip), a .jar or a directory",
                     ) from exc
    _check_zip(path, data)
    if path.suffix.lower() == ".jar":
        return Artifact(wrap_jar(path, data), CodeKind.JAR)
    return Artifact(data, CodeKind.ZIP)
