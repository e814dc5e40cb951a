"""CI must not pass by skipping: every skip has to be explained by what this machine lacks.

A test may skip only for a reason about the machine (no bubblewrap, not root, no writable cgroup
v2 memory controller...). With ``SPRIG_STRICT_SKIPS=1`` (set by ``.ci/run``) the run fails when a
test skipped for a reason that no rule here explains, or that the machine contradicts (a test
"skipped: bubblewrap is not installed" on a machine where ``bwrap`` is on the PATH). Each rule
pairs a pattern of the skip reason with a probe of the machine that says whether the reason holds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ENV_STRICT = "SPRIG_STRICT_SKIPS"
_REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Rule:
    """``pattern`` matches a skip reason; ``lacks()`` is True when the machine really lacks it."""

    pattern: str
    what: str
    lacks: Callable[[], bool]


def _no(program: str) -> Callable[[], bool]:
    return lambda: shutil.which(program) is None


@cache
def _cgroup_v1_memory_writable() -> bool:
    path = Path("/sys/fs/cgroup/memory")
    return (path / "cgroup.procs").exists() and os.access(path, os.W_OK)


@cache
def _cgroup_v2_writable() -> bool:
    for path in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (path / "cgroup.controllers").exists() and os.access(path, os.W_OK):
            return True
    return False


@cache
def _cgroup_v2_memory() -> bool:
    for path in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        controllers = path / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            return True
    return False


@cache
def _any_memory_cgroup() -> bool:
    from sprig.launcher.process import default_driver

    return default_driver() is not None


@cache
def _cpu_cgroup() -> bool:
    from sprig.launcher.process import default_driver

    driver = default_driver()
    return driver is not None and "cpu" in driver.controllers()


def _compat(package: str) -> Callable[[], bool]:
    return lambda: not (_REPO / ".compat" / "node" / "node_modules" / package).exists()


@cache
def _java_major() -> int:
    if shutil.which("java") is None:
        return 0
    out = subprocess.run(["java", "-XshowSettings:properties", "-version"],
                         capture_output=True, text=True, timeout=60).stderr
    found = re.search(r"java\.specification\.version = (?:1\.)?(\d+)", out)
    return int(found.group(1)) if found else 0


def _no_user(name: str) -> Callable[[], bool]:
    def lacks() -> bool:
        import pwd

        try:
            pwd.getpwnam(name)
        except KeyError:
            return True
        return os.geteuid() != 0
    return lacks


RULES: tuple[Rule, ...] = (
    Rule(r"aws-greengrass-core-sdk", ".compat: aws-greengrass-core-sdk",
         _compat("aws-greengrass-core-sdk")),
    Rule(r"aws-lambda-ric", ".compat: aws-lambda-ric", _compat("aws-lambda-ric")),
    Rule(r"playwright", ".compat: playwright-core", _compat("playwright-core")),
    Rule(r"Node\.js shims", "Sprig's Node.js shims",
         lambda: not (_REPO / "src/sprig/shims/nodejs/node_modules").exists()),
    Rule(r"bubblewrap|bwrap", "bubblewrap", _no("bwrap")),
    Rule(r"sprig_user", "root and the sprig_user account", _no_user("sprig_user")),
    Rule(r"cgroup ?v2 memory|memory controller in cgroup v2|cgroup2 .*memory",
         "a cgroup v2 memory controller", lambda: not _cgroup_v2_memory()),
    Rule(r"cgroup2|cgroup v2", "a writable cgroup v2 hierarchy",
         lambda: not _cgroup_v2_writable()),
    Rule(r"cgroup v1 memory", "a writable cgroup v1 memory controller",
         lambda: not _cgroup_v1_memory_writable()),
    Rule(r"cpu cgroup", "a writable cpu cgroup", lambda: not _cpu_cgroup()),
    Rule(r"memory cgroup", "a writable memory cgroup", lambda: not _any_memory_cgroup()),
    Rule(r"\broot\b|switching users|file's owner", "root", lambda: os.geteuid() != 0),
    Rule(r"Java 16", "Java 16 or later", lambda: _java_major() < 16),
    Rule(r"\bjar\b|javac|JDK", "a JDK (javac, jar)",
         lambda: shutil.which("javac") is None or shutil.which("jar") is None),
    Rule(r"\bjava\b|JVM", "a JVM", _no("java")),
    Rule(r"Node\.js|\bnode\b", "Node.js", _no("node")),
    Rule(r"mosquitto", "the mosquitto broker", _no("mosquitto")),
    Rule(r"system python3", "a system python3 at /usr/bin",
         lambda: not os.access("/usr/bin/python3", os.X_OK)),
    Rule(r"tmpfs", "mounting a tmpfs (root)", lambda: os.geteuid() != 0),
)


def judge(reason: str) -> str | None:
    """None if ``reason`` is explained by something this machine lacks (a reason may name
    several: "needs bubblewrap and a memory cgroup"); else why not."""
    matched = [rule for rule in RULES if re.search(rule.pattern, reason, re.IGNORECASE)]
    if not matched:
        return "no rule explains it: a skip must name something the machine lacks"
    if any(rule.lacks() for rule in matched):
        return None
    return "this machine has " + " and ".join(rule.what for rule in matched)
