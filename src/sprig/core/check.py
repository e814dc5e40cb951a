"""What ``sprig core check`` reports: the device's support for sandboxes and memory limits, and
the Lambda runtimes found. One text for the CLI and the console's Device page."""

from __future__ import annotations

import shutil
from pathlib import Path


def check_text() -> str:
    """The report (probes for real: starts a tiny sandbox, asks ``java`` its version)."""
    from sprig.functions.runtimes import installed_pythons, java_major
    from sprig.launcher.capabilities import check_device

    lines = [check_device().format(), "", "Lambda runtimes found:"]
    pythons = installed_pythons()
    for (major, minor), path in sorted(pythons.items()):
        lines.append(f"  python{major}.{minor}: {path}")
    if not pythons:
        lines.append("  python: none (python3.x functions cannot run)")
    node = shutil.which("node")
    lines.append(f"  nodejs: {node}" if node
                 else "  nodejs: none (nodejsNN.x functions cannot run)")
    java = shutil.which("java")
    if java:
        lines.append(f"  java: {java} (Java {java_major(Path(java))})")
    else:
        lines.append("  java: none (javaNN functions cannot run)")
    lines.append("  provided: the function's own bootstrap executable")
    return "\n".join(lines)
