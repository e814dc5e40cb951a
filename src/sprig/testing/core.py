"""A real ``sprig core run`` in a subprocess, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from sprig.cli.client import ManagementClient
from sprig.errors import SprigError
from sprig.paths import RootLayout


def write_recipe(directory: Path, doc: dict[str, Any]) -> Path:
    """Write a recipe document as YAML named ``<name>-<version>.yaml``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{doc['ComponentName']}-{doc['ComponentVersion']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class CoreProcess:
    """Start, stop, kill and talk to a core on ``root``."""

    def __init__(self, root: Path, *, config: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.layout = RootLayout(root)
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = env
        root.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (root / "config.yaml").write_text(yaml.safe_dump(config))
        self.client = ManagementClient(root, timeout_s=300)

    def start(self, timeout_s: float = 30.0) -> CoreProcess:
        env = dict(os.environ if self.env is None else self.env)
        out = open(self.root / "core.stdout", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sprig", "core", "run", "--root", str(self.root)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"core exited with {self.proc.returncode}: {self.output()}")
            try:
                self.client.call("status")
                return self
            except (SprigError, OSError):      # not listening yet, or a reset while it starts
                if time.monotonic() > deadline:
                    raise TimeoutError(f"core did not start: {self.output()}") from None
                time.sleep(0.05)

    def output(self) -> str:
        path = self.root / "core.stdout"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.call(method, params)

    def deploy(self, *, recipe_dir: Path | None = None, artifact_dir: Path | None = None,
               wait: bool = True, **document: Any) -> dict[str, Any]:
        doc = {k: v for k, v in {
            "merge": document.get("merge"), "remove": document.get("remove"),
            "configurationUpdate": document.get("configuration_update"),
            "failureHandlingPolicy": document.get("failure_handling", "ROLLBACK"),
            "runWith": document.get("run_with"),
            "systemLimits": document.get("system_limits"),
            "componentUpdatePolicy": document.get("component_update_policy"),
            "configurationValidationPolicy": document.get("configuration_validation_policy"),
        }.items() if v is not None}
        result: dict[str, Any] = self.call("deployment.create", {
            "deployment": doc,
            "recipeDir": str(recipe_dir) if recipe_dir else None,
            "artifactDir": str(artifact_dir) if artifact_dir else None,
            "wait": wait,
        })
        return result

    def wait_state(self, name: str, *states: str, timeout_s: float = 60) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "component.wait", {"name": name, "states": list(states), "timeout": timeout_s})
        if not result["reached"]:
            raise AssertionError(f"{name} did not reach {states}: {result}")
        return result

    def states(self) -> dict[str, str]:
        return {c["name"]: c["state"] for c in self.call("component.list")}

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self.proc = None

    def kill(self) -> None:
        """SIGKILL the core, as a power cut would (its process group survives: workers are
        in their own sessions)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def log(self, name: str) -> str:
        path = self.layout.component_log(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def endpoints(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.layout.endpoints_file.read_text())
        return data

    def __enter__(self) -> CoreProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            try:
                self.stop(30)
            except subprocess.TimeoutExpired:
                self.kill()
