"""Unpack a checked ZIP artifact into a fresh staging directory, within the version's budget.

The budget is what :class:`~sprig.recipe.limits.StagingLimits` allows a component version: bytes
(artifact files as copied plus everything unpacked) and files. Each figure is checked before the
writing starts (source sizes, a ZIP's declared sizes and entry count) and again while writing, so
a deployment is refused at the limit, never after filling the disk. Every file is created with
``O_EXCL | O_NOFOLLOW`` below a directory descriptor: nothing is written through a link or over
an existing file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

from sprig.errors import ValidationError
from sprig.recipe.budget import DIR_MODE, Budget
from sprig.recipe.model import Artifact, Recipe
from sprig.recipe.nofollow import CHUNK, DIR_FLAGS, create_file
from sprig.recipe.ziparchive import ZipRefused, count_central_entries, inspect

_BROKEN_ZIP = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error,
               NotImplementedError, RuntimeError)


def _make_dirs(root_fd: int, parts: tuple[str, ...]) -> int:
    """The directory ``parts`` below ``root_fd`` (created 0755 where missing), opened."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            os.mkdir(part, 0o700, dir_fd=fd)
            created = True
        except FileExistsError:
            created = False
        try:
            next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = next_fd
        if created:
            os.fchmod(fd, DIR_MODE)
    return fd


def unpack_zip(recipe: Recipe, a: Artifact, archive_path: Path, dest_fd: int, budget: Budget,
               where: str, shown: Path, mode_of: dict[bool, int]) -> None:
    """Unpack the (already copied, trusted) ZIP ``archive_path`` into the directory ``dest_fd``.

    ``mode_of[executable]`` is the mode of a file whose ZIP entry is (not) executable.

    Raises:
        ValidationError: an unsafe or broken archive, or one over the budget (nothing is
            written past a limit).
    """
    try:
        with open(archive_path, "rb") as f:
            left = budget.limits.artifacts_max_files - budget.files_used
            budget.check_entries(count_central_entries(f, left), a, where, shown)
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                contents = inspect(archive)
                budget.take_files(contents.paths, a, where, shown,
                                  f"unpacks {contents.paths} files and directories")
                budget.take_bytes(contents.declared_bytes, a, where, shown,
                                  f"unpacks to {contents.declared_bytes} bytes")
                budget.bytes_used -= contents.declared_bytes   # counted again while writing
                budget.check_disk(archive_path.parent, contents.declared_bytes, a, where, shown)
                for entry in contents.entries:
                    if entry.is_dir:
                        os.close(_make_dirs(dest_fd, entry.parts))
                        continue
                    dir_fd = _make_dirs(dest_fd, entry.parts[:-1])
                    try:
                        _write_member(archive, entry.info, dir_fd, entry.parts[-1], budget, a,
                                      where, shown, mode_of[entry.executable])
                    finally:
                        os.close(dir_fd)
    except ZipRefused as exc:
        raise ValidationError(where, f"artifact {a.file_name} of {recipe}: entry {exc.entry} "
                              f"{exc.problem}", value=exc.entry, allowed=exc.allowed) from None
    except _BROKEN_ZIP as exc:
        raise ValidationError(where, f"artifact {a.file_name} of {recipe} is not a valid ZIP "
                              f"({exc})", value=str(shown),
                              allowed="a ZIP archive, or Unarchive: NONE") from None


def _write_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dir_fd: int, name: str,
                  budget: Budget, a: Artifact, where: str, shown: Path, mode: int) -> None:
    fd = create_file(dir_fd, name)
    try:
        with archive.open(info) as fin:
            while chunk := fin.read(CHUNK):
                budget.take_bytes(len(chunk), a, where, shown,
                                  f"unpacks more than its entries declare ({info.filename})")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
