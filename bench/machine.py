"""The machine the figures were measured on: a reader needs it to compare with their own."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def cgroup_version() -> str:
    """What Sprig's launcher will use: v2 when /sys/fs/cgroup is a unified hierarchy."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return "v2 (unified)"
    if (root / "memory").is_dir():
        extra = " + a cgroup2 hierarchy (unified)" if (root / "unified").is_dir() else ""
        return f"v1 (memory controller){extra}"
    return "none found"


def describe(python: str) -> dict[str, str]:
    """Each line of the report's machine table."""
    os_name = "unknown"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "CPU": cpu_model(),
        "Cores (online)": str(os.cpu_count()),
        "Memory": f"{memory_total_mb()} MB",
        "OS": os_name,
        "Kernel": platform.release(),
        "Python (bench, core)": _first_line([python, "--version"]),
        "Python (functions)": _first_line(["python3.11", "--version"]),
        "Node.js": _first_line(["node", "--version"]),
        "Java": _first_line(["java", "-version"]),
        "cgroups": cgroup_version(),
        "bubblewrap": _first_line(["bwrap", "--version"]),
        "Load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }
