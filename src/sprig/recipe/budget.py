"""What one component version may still write, and the errors that name the artifact passing
it (see :class:`~sprig.recipe.limits.StagingLimits`). Kept apart from the ZIP code so that an
idle core never imports ``zipfile``."""

from __future__ import annotations

import os
from pathlib import Path

from sprig.disk import DiskFull
from sprig.errors import ValidationError
from sprig.recipe.limits import BYTES_KEY, FILES_KEY, StagingLimits
from sprig.recipe.model import Artifact, Recipe

DIR_MODE = 0o755  # directories are traversable; file modes decide who reads what


class Budget:
    """What one component version may still write; errors name the artifact that passes it."""

    def __init__(self, recipe: Recipe, limits: StagingLimits) -> None:
        self.recipe = recipe
        self.limits = limits
        self.bytes_used = 0
        self.files_used = 0

    def _error(self, a: Artifact, where: str, shown: Path, what: str, figure: int, limit: int,
               unit: str, key: str, *, at_least: bool = False) -> ValidationError:
        reach = "more than " if at_least else ""
        return ValidationError(
            where, f"artifact {a.file_name} of {self.recipe} {what}: the component version's "
            f"artifacts would reach {reach}{figure} {unit}, over the limit of {limit} {unit}",
            value=str(shown), allowed=f"at most {limit} {unit} per component version "
            f"({self.limits.setting(key)})")

    def take_files(self, n: int, a: Artifact, where: str, shown: Path, what: str) -> None:
        limit = self.limits.artifacts_max_files
        if self.files_used + n > limit:
            raise self._error(a, where, shown, what, self.files_used + n, limit, "files", FILES_KEY)
        self.files_used += n

    def check_entries(self, counted: int | None, a: Artifact, where: str, shown: Path) -> None:
        """Refuse a ZIP whose central directory holds more entries than files are left (it was
        counted no further than one past that)."""
        left = self.limits.artifacts_max_files - self.files_used
        if counted is not None and counted > left:
            raise self._error(a, where, shown, f"holds more than {left} entries",
                              self.limits.artifacts_max_files, self.limits.artifacts_max_files,
                              "files", FILES_KEY, at_least=True)

    def over_bytes(self, n: int, a: Artifact, where: str, shown: Path,
                   what: str) -> ValidationError:
        """The error for ``n`` more bytes than the budget allows."""
        limit = self.limits.artifacts_max_bytes
        return self._error(a, where, shown, what, self.bytes_used + n, limit, "bytes", BYTES_KEY)

    def take_bytes(self, n: int, a: Artifact, where: str, shown: Path, what: str) -> None:
        if self.bytes_used + n > self.limits.artifacts_max_bytes:
            raise self.over_bytes(n, a, where, shown, what)
        self.bytes_used += n

    @property
    def bytes_left(self) -> int:
        return self.limits.artifacts_max_bytes - self.bytes_used

    def check_disk(self, directory: Path, need: int, a: Artifact, where: str,
                   shown: Path) -> None:
        """Refuse to write ``need`` bytes if that would leave less than the reserve free."""
        st = os.statvfs(directory)
        free = st.f_bavail * st.f_frsize
        reserve = self.limits.free_space_reserve_bytes
        if need + reserve > free:
            # A full disk is a state, not a bad deployment: the same error as a write that ran
            # out of space (sprig.disk), naming the place; the deployment changes nothing.
            raise DiskFull(directory, f"{where}: artifact {a.file_name} of {self.recipe} needs "
                           f"{need} bytes but only {free} bytes are free (Sprig keeps {reserve} "
                           "bytes free); free some space or deploy smaller artifacts")
