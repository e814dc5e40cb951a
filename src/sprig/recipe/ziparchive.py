"""What a ZIP artifact may hold, checked before one byte of it is unpacked.

A ZIP is a list of names with data, made by whoever built the component. Unpacked as root it must
never write outside its directory or through a link, so every entry is judged first:

* its name: no absolute path, no ``..``, not empty (``\\`` counts as a separator, as Info-ZIP
  reads archives made on Windows);
* its kind: a symbolic link entry (Unix mode bits in the external attributes) is refused, with
  where it points; so are FIFOs, sockets and devices — only files and directories unpack;
* its place: a name used both as a file and as a directory (``a`` and ``a/b``), or a file given
  twice, is refused instead of surfacing as ``FileExistsError`` halfway through;
* the totals: entries and declared sizes against the limits. Python's ``zipfile`` never returns
  more than an entry's declared size (then fails its CRC), so the declared sum bounds what is
  written; the writer counts anyway.

The central directory itself is counted from its raw headers before ``zipfile`` reads it (a
crafted directory of millions of tiny entries would otherwise cost the core gigabytes of memory).

Both the artifact stager and ``sprig lambda import`` use these rules.
"""

from __future__ import annotations

import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from sprig.errors import SprigError
from sprig.recipe.nofollow import kind_of

_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")     # a central directory file header (46 bytes)
_CENTRAL_SIG = b"PK\x01\x02"
_END64_SIZES = 56 + 20                         # zip64 end record + its locator
_end_record: Callable[[BinaryIO], list[Any] | None] = (
    zipfile._EndRecData)  # type: ignore[attr-defined]  # exactly what ZipFile() reads


class ZipRefused(SprigError):
    """One entry (or the archive) breaks a rule: ``entry`` names it, ``problem`` says why."""

    def __init__(self, entry: str, problem: str, allowed: str) -> None:
        self.entry = entry
        self.problem = problem
        self.allowed = allowed
        super().__init__(f"{entry}: {problem}")


@dataclass(frozen=True)
class Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]        # the normalised relative path
    is_dir: bool
    executable: bool              # the owner execute bit of its Unix mode


@dataclass(frozen=True)
class Contents:
    entries: list[Entry]
    paths: int                    # files and directories it creates (implied ones included)
    declared_bytes: int           # the sum of its files' declared sizes


SAFE_NAMES = "relative paths inside the archive (no leading /, no '..')"
FILES_AND_DIRS = "regular files and directories (zip without --symlinks, or Unarchive: NONE)"


def count_central_entries(f: BinaryIO, stop_after: int) -> int | None:
    """How many entries the central directory holds, counting no further than ``stop_after``
    + 1; None when ``zipfile`` would not find a directory at all (it then raises BadZipFile).
    The directory is located exactly as ``ZipFile`` locates it."""
    end = _end_record(f)
    if not end:
        return None
    size_cd, location = end[5], end[9]
    start = location - size_cd      # ZipFile: offset_cd + concat, concat = location - size - offset
    if end[0] == b"PK\x06\x06":
        start -= _END64_SIZES
    if start < 0:
        return None
    f.seek(start)
    count, total = 0, 0
    while total < size_cd and count <= stop_after:
        header = f.read(_CENTRAL.size)
        if len(header) != _CENTRAL.size or header[:4] != _CENTRAL_SIG:
            return count          # zipfile will call it truncated or bad: let it say so
        fields = _CENTRAL.unpack(header)
        skip = fields[12] + fields[13] + fields[14]     # name, extra field, comment lengths
        f.seek(skip, 1)
        total += _CENTRAL.size + skip
        count += 1
    return count


def _parts(name: str) -> tuple[str, ...] | None:
    text = name.replace("\\", "/")
    if text.startswith("/"):
        return None
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def _link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    try:
        with archive.open(info) as f:
            return f.read(1024).decode("utf-8", "replace")
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
        return "?"


def _entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Entry:
    name = info.filename
    parts = _parts(name)
    if parts is None:
        raise ZipRefused(name, "is an unsafe path (absolute, empty or with '..')", SAFE_NAMES)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise ZipRefused(name, f"is a symbolic link (to {_link_target(archive, info)}): links "
                         "are not unpacked", FILES_AND_DIRS)
    if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ZipRefused(name, f"is {kind_of(mode)}", FILES_AND_DIRS)
    is_dir = info.is_dir() or stat.S_ISDIR(mode)
    if is_dir and info.file_size:
        raise ZipRefused(name, f"is a directory entry holding {info.file_size} bytes",
                         FILES_AND_DIRS)
    return Entry(info, parts, is_dir, bool(mode & stat.S_IXUSR) and not is_dir)


def inspect(archive: zipfile.ZipFile) -> Contents:
    """Every entry of ``archive``, judged; raises ZipRefused at the first that breaks a rule."""
    seen: dict[tuple[str, ...], tuple[bool, str]] = {}   # path -> (is a directory, entry name)
    entries: list[Entry] = []
    declared = 0
    for info in archive.infolist():
        entry = _entry(archive, info)
        for i in range(1, len(entry.parts)):
            prefix = entry.parts[:i]
            was_dir, other = seen.setdefault(prefix, (True, info.filename))
            if not was_dir:
                raise ZipRefused(info.filename, f"needs {'/'.join(prefix)} to be a directory, "
                                 f"but the entry {other} is a file", "each path either a "
                                 "file or a directory, not both")
        previous = seen.get(entry.parts)
        if previous is not None and (not previous[0] or not entry.is_dir):
            what = "the same file twice" if not previous[0] and not entry.is_dir else (
                "a file and a directory at once")
            raise ZipRefused(info.filename, f"makes {'/'.join(entry.parts)} {what} (also "
                             f"entry {previous[1]})", "each path once, as a file or a directory")
        seen[entry.parts] = (entry.is_dir, info.filename)
        entries.append(entry)
        if not entry.is_dir:
            declared += info.file_size
    return Contents(entries, len(seen), declared)
