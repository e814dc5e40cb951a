"""``python -m bench.fleet [--quick]``: the fleet's figures (issue 14), on this machine.

* **Memory**: VmRSS of an idle core with ``fleet:`` against the same core without it (both
  with the broker configured), fresh and after one deployment, by turns.
* **Convergence**: N real cores (50; 10 with ``--quick``) in one group converge on a
  one-function deployment (``sprig fleet deploy --wait``, unthrottled), against one core
  deploying the same function locally (``sprig deployment create --wait``) in the same run;
  broker messages per device for that deployment.
* **Simulation**: 2,000 simulated devices (the device protocol only, ~300 per process,
  ``bench.fleet_sim``) under one ``sprig fleet deploy --rate 1000/min --wait``, against the
  time the rate implies; then 30% failing devices with abort at 10% after 20 finished: how long
  after the threshold was crossed the abort was recorded. Broker CPU time and memory.

Prints every figure and writes them to ``bench/results/fleet.json``. Loopback only; every core,
simulator and broker is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.harness import PYTHON, REPO, public_dir
from sprig._tests.reliability.support import function_component
from sprig.testing import CoreProcess
from sprig.testing.fleet import AWS_ENV, Fleet, ThreadBroker, Watcher, moto, start_all

HANDLER = "def handler(event, context):\n    return {'echo': event}\n"
SIM_PER_PROCESS = 300
RESULTS = REPO / "bench" / "results" / "fleet.json"


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(core: CoreProcess) -> float:
    return status_kb(int(core.call("status")["pid"]), "VmRSS") / 1024


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str, int]:
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    return time.monotonic() - t0, r.stdout + r.stderr, r.returncode


def memory(fleet: Fleet, pkg: Path, out: dict[str, Any], rounds: int) -> None:
    """Fleet-enabled core against the same core without ``fleet:``, by turns."""
    plain_cfg = {k: v for k, v in fleet.config("plain", []).items() if k != "fleet"}
    pairs: list[tuple[float, float]] = []
    after: list[tuple[float, float]] = []
    many: list[tuple[float, float]] = []
    for r in range(rounds):
        plain = CoreProcess(fleet.base / f"mem-plain-{r}", config=plain_cfg,
                            env={**os.environ, **AWS_ENV})
        with_fleet = fleet.add(f"mem-fleet-{r}", ["mem"], start=False)
        start_all([plain, with_fleet])
        try:
            for _ in range(5):
                pairs.append((rss_mb(plain), rss_mb(with_fleet)))
            plain.deploy(merge={"FleetEcho": "1.0.0"}, recipe_dir=pkg / "recipes",
                         artifact_dir=pkg / "artifacts")
            _, text, rc = timed([PYTHON, "-m", "sprig", "fleet", "deploy", "--config",
                                 str(fleet.operator_config()), "--group", "mem", "--merge",
                                 "FleetEcho=1.0.0", "--wait"], {**os.environ, **AWS_ENV})
            assert rc == 0, text
            for _ in range(5):
                after.append((rss_mb(plain), rss_mb(with_fleet)))
            idle = {f"Idle{i:02d}": "1.0.0" for i in range(20)}
            plain.deploy(merge=idle, recipe_dir=pkg / "recipes", artifact_dir=pkg / "artifacts")
            _, text, rc = timed([PYTHON, "-m", "sprig", "fleet", "deploy", "--config",
                                 str(fleet.operator_config()), "--group", "mem",
                                 *(a for n in idle for a in ("--merge", f"{n}=1.0.0")),
                                 "--wait"], {**os.environ, **AWS_ENV})
            assert rc == 0, text
            for _ in range(5):
                many.append((rss_mb(plain), rss_mb(with_fleet)))
        finally:
            plain.stop()
            with_fleet.stop()
            del fleet.cores[f"mem-fleet-{r}"]
    out["memory"] = {
        "idle_plain_mb": statistics.median(p for p, _ in pairs),
        "idle_fleet_mb": statistics.median(f for _, f in pairs),
        "idle_delta_mb": statistics.median(f - p for p, f in pairs),
        "after_deployment_plain_mb": statistics.median(p for p, _ in after),
        "after_deployment_fleet_mb": statistics.median(f for _, f in after),
        "after_deployment_delta_mb": statistics.median(f - p for p, f in after),
        "with_21_functions_plain_mb": statistics.median(p for p, _ in many),
        "with_21_functions_fleet_mb": statistics.median(f for _, f in many),
        "with_21_functions_delta_mb": statistics.median(f - p for p, f in many),
        "target": "fleet core at most 2 MB over the same core without fleet:; the core's "
                  "budget 40 MB with 20 functions",
    }
    print(json.dumps(out["memory"], indent=1), flush=True)


def convergence(fleet: Fleet, pkg: Path, n: int, out: dict[str, Any], rounds: int) -> None:
    """By turns, so that the machine's other load falls on both alike: one core deploys the
    function locally, then N cores converge on it from the fleet; both remove it again."""
    things = [f"dev{i:03d}" for i in range(n)]
    for t in things:
        fleet.add(t, ["bench"], start=False)
    t0 = time.monotonic()
    start_all([fleet.cores[t] for t in things], timeout_s=600)
    print(f"{n} cores started in {time.monotonic() - t0:.1f} s", flush=True)
    local = CoreProcess(fleet.base / "local", env={**os.environ, **AWS_ENV}).start()
    env = {**os.environ, **AWS_ENV}
    operator = [PYTHON, "-m", "sprig", "fleet", "deploy", "--config",
                str(fleet.operator_config()), "--group", "bench", "--wait"]
    local_cmd = [PYTHON, "-m", "sprig", "deployment", "create", "--root", str(local.root),
                 "--recipe-dir", str(pkg / "recipes"), "--artifact-dir", str(pkg / "artifacts"),
                 "--wait"]
    local_times: list[float] = []
    fleet_times: list[float] = []
    per: list[int] = []
    timeline: dict[str, float] = {}
    try:
        for _ in range(rounds):
            took, text, rc = timed([*local_cmd, "--merge", "FleetEcho=1.0.0"])
            assert rc == 0, text
            local_times.append(took)
            watcher = Watcher(fleet.broker_port, "sprig/#")
            try:
                began = time.monotonic()
                took, text, rc = timed([*operator, "--merge", "FleetEcho=1.0.0"], env)
                assert rc == 0 and f"COMPLETED: {n} succeeded" in text, text
                fleet_times.append(took)
                live = watcher.live()
            finally:
                watcher.close()
            notes = [m.at - began for m in live if m.topic.endswith("/bench/notify")]
            starts = [m.at - began for m in live if m.topic.endswith("/bench/update")
                      and b'"IN_PROGRESS"' in m.payload]
            ends = [m.at - began for m in live if m.topic.endswith("/bench/update")
                    and b'"SUCCEEDED"' in m.payload]
            timeline = {"first_notify_s": min(notes), "last_notify_s": max(notes),
                        "first_in_progress_s": min(starts), "last_in_progress_s": max(starts),
                        "first_succeeded_s": min(ends), "last_succeeded_s": max(ends)}
            per = [len([m for m in live if m.topic in (
                f"sprig/things/{t}/jobs/thinggroup/bench/notify",
                f"sprig/things/{t}/jobs/thinggroup/bench/update",
                f"sprig/things/{t}/greengrassv2/health/json")]) for t in things]
            _, text, rc = timed([*local_cmd, "--remove", "FleetEcho"])
            assert rc == 0, text
            _, text, rc = timed([*operator, "--remove", "FleetEcho"], env)
            assert rc == 0, text
    finally:
        local.stop()
    rss = [rss_mb(fleet.cores[t]) for t in things[:10]]
    out["convergence"] = {
        "devices": n, "fleet_deploy_s": fleet_times, "local_deploy_s": local_times,
        "ratio": statistics.median(fleet_times) / statistics.median(local_times),
        "target_ratio": 3.0,
        "messages_per_device": {"max": max(per), "median": statistics.median(per)},
        "target_messages": 10, "core_rss_mb_median_of_10": statistics.median(rss),
        "timeline_from_command_start_last_round": timeline,
    }
    print(json.dumps(out["convergence"], indent=1), flush=True)
    fleet.stop_all()
    for t in things:
        del fleet.cores[t]


def _simulators(port: int, n: int, group: str, fail: float) -> list[subprocess.Popen[str]]:
    procs = []
    for first in range(0, n, SIM_PER_PROCESS):
        count = min(SIM_PER_PROCESS, n - first)
        procs.append(subprocess.Popen(
            [PYTHON, "-m", "bench.fleet_sim", str(port), str(first), str(count), group,
             str(fail)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=REPO))
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "ready", line + p.stdout.read()
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def simulation(fleet: Fleet, broker: ThreadBroker, n: int, out: dict[str, Any]) -> None:
    proc = broker.broker._proc
    assert proc is not None
    bpid = proc.pid
    rate = 1000
    t0 = time.monotonic()
    sims = _simulators(fleet.broker_port, n, "sim", 0)
    connect_s = time.monotonic() - t0
    try:
        cpu0, wall0 = cpu_seconds(bpid), time.monotonic()
        took, text, rc = timed([PYTHON, "-m", "sprig", "fleet", "deploy", "--config",
                                str(fleet.operator_config()), "--group", "sim", "--merge",
                                "FleetEcho=1.0.0", "--rate", f"{rate}/min", "--wait"],
                               {**os.environ, **AWS_ENV})
        cpu1, wall1 = cpu_seconds(bpid), time.monotonic()
        assert rc == 0 and f"COMPLETED: {n} succeeded" in text, text[-2000:]
    finally:
        _stop(sims)
    implied = (n - 1) * 60 / rate
    out["simulation"] = {
        "devices": n, "processes": len(sims), "connect_s": connect_s, "rate_per_min": rate,
        "rollout_s": took, "implied_s": implied, "ratio": took / implied, "target_ratio": 1.2,
        "broker_cpu_percent": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "broker_rss_mb": status_kb(bpid, "VmRSS") / 1024,
        "broker_peak_rss_mb": status_kb(bpid, "VmHWM") / 1024,
    }
    print(json.dumps(out["simulation"], indent=1), flush=True)
    # Abort: 30% of the devices fail; abort at 10% after 20 finished.
    sims = _simulators(fleet.broker_port, n, "simab", 30)
    watcher = Watcher(fleet.broker_port, "sprig/things/+/jobs/thinggroup/simab/+",
                      "sprig/targets/thinggroup/simab/deployment")
    try:
        took, text, rc = timed([PYTHON, "-m", "sprig", "fleet", "deploy", "--config",
                                str(fleet.operator_config()), "--group", "simab", "--merge",
                                "FleetEcho=1.0.0", "--rate", f"{rate}/min",
                                "--abort-after-failures", "10%", "--min-executed", "20",
                                "--wait"], {**os.environ, **AWS_ENV})
        assert rc == 1 and "ABORTED" in text, text[-2000:]
        msgs = list(watcher.messages)
    finally:
        watcher.close()
        _stop(sims)
    finished: dict[str, str] = {}
    crossed = aborted = None
    notified = after = 0
    for m in msgs:
        if not m.payload:
            continue
        doc = json.loads(m.payload)
        if m.topic.endswith("/deployment") and doc.get("status") == "ABORTED":
            aborted = m.at
            break
        if m.topic.endswith("/notify") and (doc.get("execution") or {}).get(
                "status") == "QUEUED":
            notified += 1
            after += crossed is not None
        if m.topic.endswith("/update") and doc.get("status") in ("SUCCEEDED", "FAILED"):
            finished[m.topic] = doc["status"]
            failures = sum(1 for s in finished.values() if s == "FAILED")
            if crossed is None and len(finished) >= 20 and failures * 100 >= 10 * len(finished):
                crossed = m.at
    assert crossed is not None and aborted is not None
    out["abort"] = {
        "threshold_crossed_to_abort_s": aborted - crossed, "rate_interval_s": 60 / rate,
        "notified_after_threshold": after, "notified_before_abort": notified,
        "devices": n, "command_s": took,
        "summary": [line for line in text.splitlines() if "ABORTED" in line],
    }
    print(json.dumps(out["abort"], indent=1), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet")
    parser.add_argument("--quick", action="store_true", help="10 cores, 300 simulated devices")
    parser.add_argument("--cores", type=int)
    parser.add_argument("--devices", type=int)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["memory", "convergence", "simulation"])
    args = parser.parse_args()
    cores = args.cores or (10 if args.quick else 50)
    devices = args.devices or (300 if args.quick else 2000)
    from bench.__main__ import commit_of

    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick,
                           "commit": commit_of(REPO),
                           "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    with public_dir("sprig-bench-fleet-") as base:
        broker = ThreadBroker(base / "broker").start()
        try:
            with moto(base) as s3:
                fleet = Fleet(base, broker.port, s3.url)
                pkg = base / "pkg"
                function_component(pkg, "FleetEcho", HANDLER, pinned="false")
                for i in range(20):
                    function_component(pkg, f"Idle{i:02d}", HANDLER, pinned="false")
                _, text, rc = timed([PYTHON, "-m", "sprig", "fleet", "publish", "--config",
                                     str(fleet.operator_config()), "--recipe-dir",
                                     str(pkg / "recipes"), "--artifact-dir",
                                     str(pkg / "artifacts")], {**os.environ, **AWS_ENV})
                assert rc == 0, text
                try:
                    if "memory" not in args.skip:
                        memory(fleet, pkg, out, 2 if args.quick else 3)
                    if "convergence" not in args.skip:
                        convergence(fleet, pkg, cores, out, 2 if args.quick else 5)
                    if "simulation" not in args.skip:
                        simulation(fleet, broker, devices, out)
                finally:
                    fleet.stop_all()
        finally:
            broker.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
