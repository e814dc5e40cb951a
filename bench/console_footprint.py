"""The console's cost when nobody uses it: a core's idle resident memory and a warm invoke's
latency with the console enabled (no browser) and disabled, and the memory once a page's live
channel is open. Run: .venv/bin/python -m bench.console_footprint [rounds]"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from sprig._tests.reliability.support import function_component, invoke, public_dir
from sprig.testing import CoreProcess


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure(enabled: bool, rounds: int) -> dict[str, float]:
    with public_dir("sprig-bench-console-") as work:
        out = work / "out"
        function_component(out, "Echo", "def handler(e, c):\n    return e\n", pinned=True)
        config = {"console": {"enabled": enabled}}
        with CoreProcess(work / "root", config=config) as core:
            result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                                 merge={"Echo": "1.0.0"})
            assert result["status"] == "SUCCEEDED", result
            pid = core.call("status")["pid"]
            for _ in range(50):
                invoke(core, "Echo", {"n": 0})
            times = []
            for i in range(rounds):
                t0 = time.perf_counter()
                invoke(core, "Echo", {"n": i})
                times.append((time.perf_counter() - t0) * 1000)
            idle = rss_kb(pid)
            figures = {"rss_idle_kb": idle, "invoke_p50_ms": statistics.median(times),
                       "invoke_p99_ms": sorted(times)[int(len(times) * 0.99) - 1]}
            if enabled:
                import subprocess
                link = subprocess.run([sys.executable, "-m", "sprig", "console", "login",
                                       "--root", str(core.root)], capture_output=True,
                                      text=True, check=True).stdout.splitlines()[0]
                url = core.endpoints()["console"]
                split = urlsplit(url)
                conn = http.client.HTTPConnection(split.hostname, split.port)
                conn.request("GET", link[len(url):])
                cookie = conn.getresponse().getheader("Set-Cookie").split(";")[0]
                conn.close()
                live = http.client.HTTPConnection(split.hostname, split.port)
                live.request("GET", "/api/events", headers={"Cookie": cookie})
                r = live.getresponse()
                r.readline()
                for i in range(rounds):
                    invoke(core, "Echo", {"n": i})
                figures["rss_with_page_kb"] = rss_kb(pid)
                live.close()
            return figures


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    report = {"disabled": measure(False, rounds), "enabled, unused": measure(True, rounds)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
