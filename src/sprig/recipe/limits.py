"""How much one deployment may bring: recipe size, and what one component version stages.

A deployment is accepted by a root process from directories other people may have filled, so
each figure is checked before (and while) anything is written: a recipe is measured before it is
parsed, a ZIP's entries before one byte is unpacked, and every copy is counted as it is written.

Why these defaults:

* ``recipe_max_bytes`` 1 MiB. The Greengrass cloud service takes recipes up to 16 kB (the GDK
  CLI checks ``MAX_RECIPE_FILE_SIZE_BYTES = 16000`` before publishing); local deployments have no
  such service in the way, and a Lambda component's recipe with a large ``DefaultConfiguration``
  may pass 16 kB, so Sprig allows 64 times that — and no 60 MB recipe.
* ``artifacts_max_bytes`` 1 GiB per component version: the artifact files as copied plus
  everything their ZIPs unpack. AWS Lambda allows 250 MB unzipped per function; Greengrass's whole
  component store defaults to 10 GB (``componentStoreMaxSizeBytes``) for every component.
* ``artifacts_max_files`` 100 000 files and directories per component version (a large
  ``node_modules`` tree has tens of thousands); it also bounds the memory a ZIP's directory takes.
* ``free_space_reserve_bytes`` 20 MB: staging never leaves less free on the disk (the nucleus
  refuses to download with less than 20 MB usable, ``DEFAULT_MIN_DISK_AVAIL_BYTES``).
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024

#: The ``config.yaml`` section and key names, for error messages that say what to change.
CONFIG_SECTION = "deploymentLimits"
RECIPE_KEY = "recipeMaxSizeBytes"
BYTES_KEY = "artifactsMaxSizeBytes"
FILES_KEY = "artifactsMaxFiles"


@dataclass(frozen=True)
class StagingLimits:
    recipe_max_bytes: int = 1 * MiB
    artifacts_max_bytes: int = 1024 * MiB
    artifacts_max_files: int = 100_000
    free_space_reserve_bytes: int = 20 * MiB

    def setting(self, key: str) -> str:
        """Where a limit is configured, for the ``allowed`` part of an error."""
        return f"{CONFIG_SECTION}.{key} in config.yaml"


DEFAULT_LIMITS = StagingLimits()
