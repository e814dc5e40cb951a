"""Helpers the reliability tests share: roots others can traverse, test functions and
components, and the process / cgroup scans that find what a killed core left behind."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags
from sprig.testing import CoreProcess, write_recipe

CGROUP_V1_PARENT = Path("/sys/fs/cgroup/memory/sprig")


@contextmanager
def public_dir(prefix: str) -> Iterator[Path]:
    """A 0755 directory under /tmp: a core's root must be reachable by ``sprig_user``."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def function_component(out: Path, name: str, handler_code: str, *, version: str = "1.0.0",
                       handler: str = "app.handler", runtime: str = "python3.11",
                       **flags: Any) -> None:
    """Import ``handler_code`` (as ``app.py``) into ``out/recipes`` and ``out/artifacts`` the
    way ``sprig lambda import`` does."""
    code = out.parent / f"code-{name}-{version}"
    code.mkdir(parents=True, exist_ok=True)
    (code / "app.py").write_text(handler_code)
    import_function(code, out, ImportFlags(name=name, version=version, runtime=runtime,
                                           handler=handler, **flags))


def generic_component(recipes: Path, name: str, version: str, *, marker: str,
                      config: dict[str, Any] | None = None, install: str | None = None,
                      broken: bool = False) -> None:
    """A long-running generic component whose process carries ``SPRIG_TRIAL_ROOT=marker`` in
    its environment, so a scan can find it; ``broken``: its Install exits 1 (BROKEN after three
    tries, never RUNNING: a Run that exits at once would count as RUNNING for a moment)."""
    lifecycle: dict[str, Any] = {"Run": f"exec env SPRIG_TRIAL_ROOT={marker} sleep 600"}
    if broken:
        lifecycle["Install"] = "echo this version is broken >&2; exit 1"
    if install and not broken:
        lifecycle["Install"] = install
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": config or {}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle}],
    })


def invoke(core: CoreProcess, name: str, payload: Any = None,
           invocation_type: str = "RequestResponse") -> dict[str, Any]:
    """Invoke through the management API; the payload comes back decoded."""
    result: dict[str, Any] = core.call("invoke", {
        "function": name, "invocationType": invocation_type,
        "payload": base64.b64encode(json.dumps(payload or {}).encode()).decode()})
    raw = base64.b64decode(result.get("payload") or "")
    result["payload"] = json.loads(raw) if raw else None
    return result


def wait_deployment(core: CoreProcess, dep_id: str) -> dict[str, Any]:
    """Block (on the core's own notification, no polling) until a deployment is final."""
    for item in core.client.stream("deployment.wait", {"deploymentId": dep_id}):
        return dict(item)
    raise AssertionError(f"deployment.wait for {dep_id} returned nothing")


# -- what a killed core may leave behind -------------------------------------------------------

def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _ppid(pid: int) -> int:
    stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
    try:
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


def processes_marked(marker: str) -> list[int]:
    """Pids whose command line or environment mention ``marker`` (a test's root), other than
    this test process and its ancestors."""
    needle = marker.encode()
    mine = {os.getpid()}
    p = os.getpid()
    while p > 1:
        p = _ppid(p)
        mine.add(p)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        if needle in _read(f"/proc/{entry}/cmdline") or needle in _read(f"/proc/{entry}/environ"):
            found.append(int(entry))
    return found


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = _ppid(pid)
    return False


def orphans(marker: str, core_pid: int | None) -> list[str]:
    """Processes of this root not descending from the running core (all of them if none runs),
    described for an assertion message."""
    found = []
    for pid in processes_marked(marker):
        if core_pid is not None and descends_from(pid, core_pid):
            continue
        cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace")
        if cmd:                       # an exited process reads as empty: not an orphan
            found.append(f"{pid} (ppid {_ppid(pid)}): {cmd[:160]}")
    return found


def cgroups_of(components: list[str]) -> list[Path]:
    """The v1 memory cgroups of these components' workers (``<component>-<n>-<instance>``; the
    older ``sprig-<component>-<worker>`` too). Test components have unique names."""
    if not CGROUP_V1_PARENT.is_dir():
        return []
    prefixes = tuple(f"{c}-" for c in components) + tuple(f"sprig-{c}-" for c in components)

    def name(p: Path) -> str:       # a core names its cgroups r<digest of its root>-<name>
        return re.sub(r"^r[0-9a-f]{8}-", "", p.name)

    return sorted(p for p in CGROUP_V1_PARENT.iterdir()
                  if p.is_dir() and name(p).startswith(prefixes))


def cgroup_pids(path: Path) -> list[int]:
    return [int(x) for x in _read(str(path / "cgroup.procs")).split()]


def stray_cgroups(components: list[str], core_pid: int | None) -> list[str]:
    """Cgroups of these components that are empty or hold processes not of the running core."""
    stray = []
    for cg in cgroups_of(components):
        pids = cgroup_pids(cg)
        if not pids or core_pid is None or not all(descends_from(p, core_pid) for p in pids):
            stray.append(f"{cg.name}: pids {pids}")
    return stray
