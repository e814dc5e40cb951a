"""Read-only views of the running core for the management API (``device.info``,
``component.graph``, ``function.list``): what the console's pages show, answered from the
kernel and the Lambda manager as they are now. Nothing here changes anything."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from sprig import __version__
from sprig.errors import ValidationError
from sprig.functions.config import LambdaConfig
from sprig.functions.pool import WorkerState

if TYPE_CHECKING:
    from sprig.core.kernel import Kernel
    from sprig.functions.function import Function
    from sprig.functions.manager import FunctionManager


class DeviceView:
    """``device.info``: who and what this device is, and how the core itself is doing."""

    def __init__(self, kernel: Kernel, started: float) -> None:
        self.kernel = kernel
        self.started = started
        self._check: tuple[float, str] | None = None
        self._check_lock = asyncio.Lock()

    async def info(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params.recheck``: probe the device again (else the first probe's report)."""
        async with self._check_lock:
            if self._check is None or params.get("recheck"):
                from sprig.core.check import check_text

                self._check = (time.time(), await asyncio.to_thread(check_text))
        checked_at, report = self._check
        settings = self.kernel.settings
        return {
            "thingName": settings.thing_name,
            "awsRegion": settings.region,
            "platform": dict(self.kernel.platform),
            "version": __version__,
            "root": str(self.kernel.layout.root),
            "pid": os.getpid(),
            "uptimeSeconds": round(time.time() - self.started, 1),
            "check": report,
            "checkedAt": checked_at,
            "process": process_usage(),
        }


def process_usage() -> dict[str, Any]:
    """The core process's resident memory (now and peak, KB) and CPU time (s) so far."""
    memory: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    memory[key] = int(value.split()[0])
    except OSError:
        pass
    times = os.times()
    return {"rssKb": memory.get("VmRSS"), "peakRssKb": memory.get("VmHWM"),
            "cpuSeconds": round(times.user + times.system, 3), "at": time.time(),
            "cpus": os.cpu_count()}


def component_graph(kernel: Kernel) -> dict[str, Any]:
    """``component.graph``: every running component (name, version, state, type) and its
    dependency edges (HARD or SOFT), for the console's graph."""
    nodes = []
    edges = []
    for name, svc in sorted(kernel.services.items()):
        comp = svc.component
        nodes.append({"name": name, "version": comp.version, "state": str(svc.state),
                      "componentType": comp.component_type, "lastError": svc.last_error})
        for dep, kind in sorted(comp.dependencies.items()):
            edges.append({"from": name, "to": dep, "type": kind})
    return {"nodes": nodes, "edges": edges}


def function_view(fn: Function) -> dict[str, Any]:
    """One function: its lifecycle and limits from its configuration, its workers now and its
    invocation figures (:mod:`sprig.functions.stats`)."""
    cfg: LambdaConfig = fn.spec.config
    pool = fn.pool
    return {
        "name": fn.name,
        "functionArn": fn.spec.function_arn,
        "runtime": fn.spec.runtime,
        "handler": fn.spec.handler,
        "state": str(fn.state),
        "lifecycle": "pinned" if cfg.pinned else "on-demand",
        "containerMode": str(cfg.container_mode),
        "memoryKb": cfg.memory_kb,
        "timeoutSeconds": cfg.timeout_s,
        "maxInstancesCount": cfg.max_instances,
        "maxQueueSize": cfg.max_queue_size,
        "workers": {str(s): pool.count(s) for s in WorkerState},
        "queued": len(pool.queue),
        "eventSources": [{"topic": s.topic, "type": str(s.type)}
                         for s in cfg.event_sources],
        **fn.stats.snapshot(),
    }


def function_list(functions: FunctionManager) -> list[dict[str, Any]]:
    """``function.list``: every function the Lambda manager runs now, with its last 60
    durations (for a chart)."""
    return [{**function_view(fn), "recent": fn.stats.recent(60)}
            for fn in sorted(functions, key=lambda f: f.name)]



def find_function(functions: FunctionManager, name: str) -> Function:
    fn = functions.get(name)
    if fn is None:
        raise ValidationError("name", "no such running function", value=name,
                              allowed=", ".join(sorted(f.name for f in functions)) or "(none)")
    return fn
