"""A real core with a function and two generic components, the console's login link from the
real CLI, and (for the browser tests) Debian's Chromium driven by Playwright."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sprig._tests.reliability.support import function_component, public_dir
from sprig.testing import CoreProcess, write_recipe

HELLO = """
import json
def handler(event, context):
    print("hello handler got " + json.dumps(event))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"greeting": "Hello, " + str(event.get("name", "world")) + "!"}
"""


@dataclass
class Device:
    core: CoreProcess
    root: Path
    work: Path          # 0755, readable by the components' run-as user
    url: str

    def login_link(self, *extra: str) -> str:
        """``sprig console login`` as a user runs it: the link is its first line."""
        out = subprocess.run([sys.executable, "-m", "sprig", "console", "login", "--root",
                              str(self.root), *extra], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        return out.splitlines()[0]

    @property
    def fail_flag(self) -> Path:
        return self.work / "fail-now"


def deploy_device(work: Path, core: CoreProcess) -> None:
    out = work / "out"
    function_component(out, "Hello", HELLO, pinned=True, memory_kb="65536")
    write_recipe(out / "recipes", {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Flaky",
        "ComponentVersion": "1.0.0",
        "ComponentDescription": "Runs until the test creates its fail flag, then fails",
        "ComponentConfiguration": {"DefaultConfiguration": {"flag": str(work / "fail-now")}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {
            "Run": "echo Flaky is up; while [ ! -e {configuration:/flag} ]; do sleep 0.1; done;"
                   " echo Flaky saw its fail flag >&2; exit 1"}}],
    })
    write_recipe(out / "recipes", {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Dashboard",
        "ComponentVersion": "1.0.0",
        "ComponentDependencies": {"com.example.Flaky": {"VersionRequirement": ">=1.0.0",
                                                        "DependencyType": "SOFT"},
                                  "Hello": {"VersionRequirement": ">=1.0.0",
                                            "DependencyType": "HARD"}},
        "ComponentConfiguration": {"DefaultConfiguration": {"title": "Edge"}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {
            "Run": "echo Dashboard showing {configuration:/title}; exec sleep 600"}}],
    })
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Hello": "1.0.0", "com.example.Dashboard": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result


@pytest.fixture(scope="module")
def device() -> Iterator[Device]:
    with public_dir("sprig-console-") as work, CoreProcess(work / "root") as core:
        deploy_device(work, core)
        yield Device(core, work / "root", work, core.endpoints()["console"])
