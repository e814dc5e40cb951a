"""Crash safety: SIGKILL the core at random points during deployments (new components, version
changes, removals), configuration updates and invocation traffic, restart it, and check that
nothing acknowledged is lost and nothing is left half-done.

Each test runs ``SPRIG_CRASH_TRIALS`` trials (default 20; five scenarios → 100 per run) on one
root. The seed is printed (``-s`` shows it; it is also in the failure message) and can be fixed
with ``SPRIG_CRASH_SEED``. A trial:

1. records the desired state (components, versions, configurations);
2. submits a random deployment and keeps its id (the core acknowledged it), while a thread keeps
   invoking the pinned function;
3. kills the core with SIGKILL after a random delay (0-300 ms), restarts it;
4. waits for the deployment to be final and checks: SUCCEEDED → exactly the target state,
   FAILED → exactly the state before (the "rollback" scenario deploys a version whose Install
   fails, with other changes, so each of its deployments must end FAILED and rolled back);
   every component RUNNING at its recorded version; the pinned function answers from the
   expected version; no process of this root outside the new core's tree; no cgroup of this
   root's workers that is empty or belongs to a dead core.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sprig._tests.reliability.support import (
    CGROUP_V1_PARENT,
    function_component,
    generic_component,
    invoke,
    orphans,
    public_dir,
    stray_cgroups,
    wait_deployment,
)
from sprig.cli.client import CoreNotRunning, ManagementApiError
from sprig.errors import SprigError
from sprig.state.db import StateDB
from sprig.testing import CoreProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRIALS = int(os.environ.get("SPRIG_CRASH_TRIALS", "20"))
BASE_SEED = int(os.environ.get("SPRIG_CRASH_SEED", str(random.SystemRandom().randrange(1 << 30))))

HANDLER = """
import os
VERSION = "{version}"
def handler(event, context):
    return {{"version": VERSION, "tag": os.environ.get("TAG", "")}}
"""

GENERIC_COMMAND = "sleep 600"       # what generic_component() runs

Desired = dict[str, tuple[str, dict[str, Any]]]   # name -> (version, configuration)


@dataclass
class World:
    """The components a trial can play with, all named with a per-test prefix."""

    prefix: str
    recipes: Path
    artifacts: Path
    core: CoreProcess
    history: list[str] = field(default_factory=list)

    @property
    def fn(self) -> str:          # pinned, always deployed: must answer after every restart
        return f"{self.prefix}Fn"

    @property
    def od(self) -> str:          # on-demand, added and removed
        return f"{self.prefix}Od"

    @property
    def a(self) -> str:           # generic with a slow install, versions 1 and 2
        return f"{self.prefix}A"

    @property
    def b(self) -> str:           # generic, added and removed, configuration MERGE/RESET
        return f"{self.prefix}B"

    def names(self) -> list[str]:
        return [self.fn, self.od, self.a, self.b]


@pytest.fixture
def world() -> Iterator[World]:
    with public_dir("sprig-crash-") as base:
        prefix = f"Cr{random.SystemRandom().randrange(16**4):04x}"
        out = base / "out"
        for version in ("1.0.0", "2.0.0"):
            function_component(out, f"{prefix}Fn", HANDLER.format(version=version),
                               version=version, pinned=True, memory_kb="65536")
        function_component(out, f"{prefix}Od", HANDLER.format(version="1.0.0"), pinned=False)
        root = base / "root"
        for version in ("1.0.0", "2.0.0"):
            generic_component(out / "recipes", f"{prefix}A", version, marker=str(root),
                              config={"tag": "a0"}, install="sleep 0.2")
        generic_component(out / "recipes", f"{prefix}A", "3.0.0", marker=str(root),
                          config={"tag": "a0"}, broken=True)
        generic_component(out / "recipes", f"{prefix}B", "1.0.0", marker=str(root),
                          config={"tag": "b0", "nested": {"x": 1}}, install="sleep 0.1")
        core = CoreProcess(root).start()
        w = World(prefix, out / "recipes", out / "artifacts", core)
        try:
            yield w
        finally:
            if core.proc is not None:
                core.stop(60)
            leftovers = orphans(str(root), None)
            cgroups = stray_cgroups(w.names(), None)
            assert not leftovers, f"processes left after a graceful stop: {leftovers}"
            assert not cgroups, f"cgroups left after a graceful stop: {cgroups}"


def desired(w: World) -> Desired:
    state: Desired = {}
    for comp in w.core.call("component.list"):
        if comp["name"].startswith(w.prefix):
            details = w.core.call("component.details", {"name": comp["name"]})
            state[comp["name"]] = (comp["version"], details["configuration"])
    return state


def plan(rng: random.Random, w: World, before: Desired, scenario: str,
         trial: int) -> tuple[dict[str, Any] | None, Desired]:
    """A random deployment document for ``scenario`` and the state it should produce."""
    target = copy.deepcopy(before)
    merge: dict[str, str] = {}
    remove: list[str] = []
    update: dict[str, Any] = {}
    if scenario == "traffic" and rng.random() < 0.7:
        return None, target
    if scenario == "rollback":
        # A broken version of A (BROKEN after three tries → FAILED → rolled back), with other
        # changes that must be undone with it. The target is never reached.
        merge[w.a] = "3.0.0"
        if w.od not in target:
            merge[w.od] = "1.0.0"
        elif rng.random() < 0.5:
            remove.append(w.od)
        if rng.random() < 0.5:
            other = "2.0.0" if target[w.fn][0] == "1.0.0" else "1.0.0"
            merge[w.fn] = other
        update[w.a] = {"MERGE": {"tag": f"never-{trial}"}}
        target[w.a] = ("3.0.0", {"tag": f"never-{trial}"})
    if scenario in ("components", "traffic"):
        for name in (w.od, w.b):
            if name in target and rng.random() < 0.5:
                remove.append(name)
                del target[name]
            elif name not in target and rng.random() < 0.7:
                merge[name] = "1.0.0"
                target[name] = ("1.0.0", {"tag": "b0", "nested": {"x": 1}} if name == w.b
                                else _default_function_config(w, before))
    if scenario in ("versions", "traffic") or not (merge or remove):
        for name in (w.fn, w.a):
            if name in target and (rng.random() < 0.6 or scenario != "versions"):
                other = "2.0.0" if target[name][0] == "1.0.0" else "1.0.0"
                merge[name] = other
                target[name] = (other, target[name][1])
    if scenario == "configuration":
        tag = f"t{trial}-{rng.randrange(1000)}"
        choice = rng.choice(["a", "b", "fn"])
        if choice == "a":
            update[w.a] = {"MERGE": {"tag": tag}}
            target[w.a][1]["tag"] = tag
        elif choice == "b" and w.b in target:
            update[w.b] = {"RESET": ["/tag"], "MERGE": {"nested": {"y": tag}}}
            target[w.b][1]["tag"] = "b0"
            target[w.b][1]["nested"]["y"] = tag
        else:
            env = {"TAG": tag}
            update[w.fn] = {"MERGE": {"lambdaExecutionParameters": {"EnvironmentVariables": env}}}
            target[w.fn][1]["lambdaExecutionParameters"]["EnvironmentVariables"] = env
    doc: dict[str, Any] = {"failureHandlingPolicy": "ROLLBACK"}
    if merge:
        doc["merge"] = merge
    if remove:
        doc["remove"] = remove
    if update:
        doc["configurationUpdate"] = update
    return doc, target


def _default_function_config(w: World, before: Desired) -> dict[str, Any]:
    cfg = copy.deepcopy(before[w.fn][1])
    cfg["pinned"] = False
    cfg["containerParams"]["memorySize"] = 16384
    cfg["lambdaExecutionParameters"]["EnvironmentVariables"] = {}
    return cfg


class Traffic(threading.Thread):
    """Invokes the pinned function in a loop (errors expected while the core is down)."""

    def __init__(self, w: World) -> None:
        super().__init__(daemon=True)
        self.w = w
        self.stop = threading.Event()
        self.ok = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                invoke(self.w.core, self.w.fn, {"n": self.ok})
                self.ok += 1
            except (ManagementApiError, CoreNotRunning, SprigError, OSError, ValueError,
                    AttributeError):
                self.stop.wait(0.01)


def check(w: World, target: Desired, before: Desired, final: dict[str, Any], what: str) -> None:
    after = desired(w)
    if w.a in target and target[w.a][0] == "3.0.0":
        assert final["status"] == "FAILED", f"{what}: a broken version was accepted: {final}"
    if final["status"] == "SUCCEEDED":
        expected = target
    else:
        assert final["status"] == "FAILED", f"{what}: not final: {final}"
        expected = before
    for name, (version, cfg) in expected.items():
        assert name in after, f"{what}: {name} missing; have {sorted(after)}"
        assert after[name][0] == version, f"{what}: {name} version {after[name][0]} != {version}"
        if name in (w.od, w.fn) and name in target and name not in before:
            continue          # a new function: its defaults are the importer's, not compared
        for key, value in cfg.items():
            assert after[name][1].get(key) == value, (
                f"{what}: {name} configuration /{key} = {after[name][1].get(key)!r}, "
                f"expected {value!r} ({final['status']})")
    assert set(after) == set(expected), f"{what}: components {sorted(after)} != {sorted(expected)}"
    for name in expected:     # the restarted core brings every component back up
        reached = w.core.call("component.wait",
                              {"name": name, "states": ["RUNNING"], "timeout": 30})
        assert reached["reached"], f"{what}: {name} is {reached} (half-installed?)"
    answer = invoke(w.core, w.fn, {})
    assert answer["functionError"] is None, f"{what}: pinned function: {answer}"
    assert answer["payload"]["version"] == expected[w.fn][0].split(".")[0] + ".0.0", answer
    env = expected[w.fn][1]["lambdaExecutionParameters"]["EnvironmentVariables"]
    assert answer["payload"]["tag"] == env.get("TAG", ""), f"{what}: {answer}"


SCENARIOS = ["components", "versions", "configuration", "traffic", "rollback"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sigkill_at_random_points_loses_nothing_acknowledged(world: World, scenario: str) -> None:
    run_trials(world, scenario, strict=True)


def run_trials(world: World, scenario: str, *, strict: bool) -> None:
    """The trials. ``strict`` also fails on two known issues (see RELIABILITY.md), which the
    committed suite counts, prints and cleans up instead (/tmp/reliability_pending/ runs the
    strict version):

    * a generic component's process left running by a killed core: it is recorded in
      ``run/children.json`` only after ``spawn`` returns, so a kill in between leaves it
      unrecorded;
    * an empty cgroup of a killed core's worker: worker cgroups have unique names, and the
      next core does not remove its predecessor's.
    """
    seed = BASE_SEED + SCENARIOS.index(scenario)
    rng = random.Random(seed)
    print(f"crash trials: scenario={scenario} seed={seed} trials={TRIALS}")
    w = world
    first = w.core.deploy(recipe_dir=w.recipes, artifact_dir=w.artifacts,
                          merge={w.fn: "1.0.0", w.a: "1.0.0"})
    assert first["status"] == "SUCCEEDED", first
    outcomes: dict[str, int] = {}
    killed_at: dict[str, int] = {}
    answered = 0
    generic_orphans = 0
    empty_cgroups = 0
    for trial in range(TRIALS):
        what = f"seed {seed} trial {trial}"
        before = desired(w)
        doc, target = plan(rng, w, before, scenario, trial)
        traffic = Traffic(w)
        traffic.start()
        dep_id = None
        if doc is not None:
            ack = w.core.call("deployment.create", {
                "deployment": doc, "recipeDir": str(w.recipes),
                "artifactDir": str(w.artifacts), "wait": False})
            dep_id = ack["deploymentId"]
        delay = rng.uniform(0.0, 0.3)
        time.sleep(delay)                   # the random kill point, not a wait for anything
        w.core.kill()
        traffic.stop.set()
        traffic.join(30)
        answered += traffic.ok
        at_kill = "no deployment"
        if dep_id is not None:          # where the kill landed, as the database recorded it
            db = StateDB(w.core.layout.state_db)
            record = db.deployment(dep_id)
            db.close()
            assert record is not None, f"{what}: acknowledged deployment {dep_id} not persisted"
            at_kill = record.status
        killed_at[at_kill] = killed_at.get(at_kill, 0) + 1
        w.history.append(f"{what}: {doc} killed after {delay * 1000:.0f} ms ({at_kill})")
        w.core.start()
        if dep_id is not None:
            final = wait_deployment(w.core, dep_id)
        else:
            final = {"status": "SUCCEEDED"}
            for name in target:
                w.core.wait_state(name, "RUNNING", timeout_s=30)
        outcomes[final["status"]] = outcomes.get(final["status"], 0) + 1
        try:
            check(w, target, before, final, what)
            found = orphans(str(w.core.root), w.core.proc.pid if w.core.proc else None)
            generic = [o for o in found if o.split(": ", 1)[1].startswith(GENERIC_COMMAND)]
            if generic and not strict:
                generic_orphans += len(generic)
                print(f"{what}: KNOWN ISSUE generic component process orphaned: {generic}")
                for o in generic:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(o.split()[0]), signal.SIGKILL)
                found = [o for o in found if o not in generic]
            assert not found, f"{what}: orphan processes {found}"
            cgroups = stray_cgroups(w.names(), w.core.proc.pid if w.core.proc else None)
            empty = [c for c in cgroups if c.endswith("pids []")]
            if empty and not strict:
                empty_cgroups += len(empty)
                print(f"{what}: KNOWN ISSUE empty cgroups of a killed core's workers: {empty}")
                for c in empty:
                    with contextlib.suppress(OSError):
                        (CGROUP_V1_PARENT / c.split(":")[0]).rmdir()
                cgroups = [c for c in cgroups if c not in empty]
            assert not cgroups, f"{what}: stray cgroups {cgroups}"
        except AssertionError as e:
            raise AssertionError(f"{e}\nhistory:\n" + "\n".join(w.history[-5:])) from None
    print(f"crash trials: scenario={scenario} seed={seed} killed while {killed_at} "
          f"outcomes={outcomes} invocations answered={answered} "
          f"generic orphans (known issue)={generic_orphans} "
          f"empty cgroups left (known issue)={empty_cgroups}")
