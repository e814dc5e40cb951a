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


def zip_directory(root: Path) -> bytes:
    """Zip a directory tree deterministically. Executable files keep 0755 (a ``provided``
    function's ``bootstrap`` must stay executable), others get 0644; symlinks are stored as
    the file they point to; empty directories are kept."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for dirpath, dirnames, filenames in sorted(os.walk(root)):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(root)
            if not filenames and not dirnames and rel_dir != Path("."):
                zf.writestr(_entry(rel_dir.as_posix() + "/", stat.S_IFDIR | 0o755), b"")
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                try:
                    st = full.stat()
                except OSError as exc:
                    raise c.fail(str(full), f"cannot read the file: {exc.strerror}",
                                 CODE_SOURCE, has_value=False) from exc
                if not stat.S_ISREG(st.st_mode):
                    continue
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                zf.writestr(_entry((rel_dir / fname).as_posix(), stat.S_IFREG | mode),
                            full.read_bytes())
    return buf.getvalue()


def wrap_jar(jar: Path, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_entry(jar.name, stat.S_IFREG | 0o644), data)
    return buf.getvalue()


def _check_zip(path: Path, data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise c.fail(str(path), "is not a zip archive", CODE_SOURCE, has_value=False,
                     allowed="a Lambda deployment package (.zip), a .jar or a directory",
                     ) from exc
    for name in names:
        if name.startswith("/") or ".." in Path(name).parts:
            raise c.fail(str(path), "holds an entry outside the archive root", CODE_SOURCE,
                         value=name, allowed="relative entry names without '..'")


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
