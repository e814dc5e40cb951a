"""The root directory layout (see DESIGN.md): one place that knows where every file lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_ROOT = "SPRIG_ROOT"


SYSTEM_ROOT = Path("/var/lib/sprig")


def default_root() -> Path:
    """``$SPRIG_ROOT`` if set, else ``~/.sprig`` — except for root, whose home is private
    (0700) so the unprivileged run-as user could not reach the components' work directories:
    root's default is ``/var/lib/sprig`` (as Greengrass uses ``/greengrass/v2``)."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return SYSTEM_ROOT
    return (Path.home() / ".sprig").resolve()


@dataclass(frozen=True)
class RootLayout:
    """Paths under a Sprig root directory."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def recipes(self) -> Path:
        return self.root / "packages" / "recipes"

    @property
    def artifacts(self) -> Path:
        return self.root / "packages" / "artifacts"

    @property
    def artifacts_unarchived(self) -> Path:
        return self.root / "packages" / "artifacts-unarchived"

    def artifact_dir(self, name: str, version: str) -> Path:
        return self.artifacts / name / version

    def unarchived_dir(self, name: str, version: str) -> Path:
        return self.artifacts_unarchived / name / version

    @property
    def work(self) -> Path:
        return self.root / "work"

    def work_dir(self, name: str) -> Path:
        return self.work / name

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def component_log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def core_log(self) -> Path:
        return self.logs / "sprig.log"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def management_socket(self) -> Path:
        return self.run / "sprig.sock"

    @property
    def ipc_socket(self) -> Path:
        """The Greengrass IPC socket: in the root itself (not in the owner-only run/), so the
        components' run-as users can reach it; the SVCUID token authenticates them."""
        return self.root / "ipc.socket"

    @property
    def runtime_sockets(self) -> Path:
        """Each function's Runtime API Unix sockets, in a directory of its own below this one
        (0711: traversable, so sandboxes can bind their socket's directory, not listable). A
        starting core empties it: what is there belongs to a core that is gone."""
        return self.root / "rapi"

    @property
    def endpoints_file(self) -> Path:
        return self.run / "endpoints.json"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    @property
    def secrets_key(self) -> Path:
        return self.root / "secrets.key"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def create(self) -> None:
        """Create the directories (owner-only where they hold private state)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for d in (self.recipes, self.artifacts, self.artifacts_unarchived, self.work, self.logs,
                  self.cache):
            d.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run, 0o700)
        self.runtime_sockets.mkdir(exist_ok=True)
        os.chmod(self.runtime_sockets, 0o711)
