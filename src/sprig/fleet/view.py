"""``sprig fleet status``: every device (online, health, its executions, its components) and
every target's rollout, read from the retained messages in one pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sprig.fleet.broker import BrokerSession
from sprig.fleet.topics import FleetTopics, Target
from sprig.mqtt.settings import MqttSettings


async def fleet_state(mqtt: MqttSettings, topics: FleetTopics) -> dict[str, Any]:
    async with BrokerSession(mqtt, topics.prefix) as s:
        await s.subscribe(topics.all_presence(), topics.all_health(), topics.all_jobs(),
                          topics.all_deployments())
        await s.sync()
        devices: dict[str, dict[str, Any]] = {}

        def device(thing: str) -> dict[str, Any]:
            return devices.setdefault(thing, {"thing": thing, "online": False, "groups": [],
                                              "health": None, "components": [],
                                              "executions": {}})

        targets: dict[str, Any] = {}
        for topic in sorted(s.state):
            doc = s.json(topic)
            if not isinstance(doc, dict):
                continue
            if (thing := topics.thing_of(topic, "presence")) is not None:
                device(thing)["online"] = doc.get("status") == "ONLINE"
            elif (thing := topics.thing_of(topic, "greengrassv2/health/json")) is not None:
                d = device(thing)
                d["groups"] = doc.get("thingGroups") or []
                d["health"] = doc.get("overallDeviceStatus")
                d["version"] = doc.get("ggcVersion")
                d["components"] = [{"name": c.get("componentName"),
                                    "version": c.get("version"), "state": c.get("status")}
                                   for c in doc.get("components") or []]
            elif (parsed := topics.parse_job_topic(topic)) is not None:
                thing, target, kind = parsed
                ex = device(thing)["executions"].setdefault(str(target), {})
                if kind == "notify":
                    e = doc.get("execution") or {}
                    ex["notified"] = {"jobId": e.get("jobId"), "status": e.get("status")}
                else:
                    ex["status"] = {"jobId": doc.get("jobId"), "status": doc.get("status"),
                                    "statusDetails": doc.get("statusDetails") or {}}
            elif (dep_target := topics.target_of_deployment_topic(topic)) is not None:
                targets[str(dep_target)] = {
                    "deploymentId": doc.get("deploymentId"), "status": doc.get("status"),
                    "reason": doc.get("reason"), "revision": doc.get("revision"),
                    "components": {n: (c or {}).get("version", (c or {}).get(
                        "componentVersion")) for n, c in
                        ((doc.get("document") or {}).get("components") or {}).items()},
                    "iotJobConfiguration": doc.get("iotJobConfiguration") or {}}
        return {"devices": [devices[t] for t in sorted(devices)], "targets": targets}


def execution_state(device: dict[str, Any], target: str, job_id: str | None) -> str:
    """One word for a device's execution of ``job_id`` on ``target``."""
    ex = device["executions"].get(target) or {}
    status = ex.get("status") or {}
    notified = ex.get("notified") or {}
    if job_id is not None and status.get("jobId") == job_id:
        return str(status.get("status"))
    if job_id is not None and notified.get("jobId") == job_id:
        return str(notified.get("status"))
    if status:
        return f"{status.get('status')} (older deployment)"
    return "-"


def render(state: dict[str, Any], group: str | None, out: Callable[[str], None]) -> int:
    targets = state["targets"]
    devices = state["devices"]
    if group is not None:
        key = str(Target("thinggroup", group))
        devices = [d for d in devices if group in d["groups"]]
        targets = {k: v for k, v in targets.items() if k == key}
    for key, t in sorted(targets.items()):
        comps = ", ".join(f"{n}={v}" for n, v in sorted(t["components"].items()))
        out(f"{key}: deployment {t['deploymentId']} (revision {t['revision']}) {t['status']}"
            + (f" - {t['reason']}" if t.get("reason") else "") + f"  [{comps}]")
    if not devices:
        out("no device has announced itself" + (f" in group {group}" if group else ""))
        return 0
    rows: list[tuple[str, str, str, str, str]] = []
    for d in devices:
        dep_states = []
        for key in sorted(set(d["executions"]) | {f"thinggroup/{g}" for g in d["groups"]}):
            job = (state["targets"].get(key) or {}).get("deploymentId")
            word = execution_state(d, key, job)
            if word != "-":
                dep_states.append(word if len(d["groups"]) <= 1 else f"{key}:{word}")
        comps = ", ".join(f"{c['name']}={c['version']}({c['state']})" for c in d["components"]
                          if not str(c["name"]).startswith("aws.greengrass."))
        rows.append((d["thing"], "yes" if d["online"] else "no", d["health"] or "-",
                     ", ".join(dep_states) or "-", comps))
    # Columns as wide as their longest value ("SUCCEEDED (older deployment)", long names).
    w_thing = max([24, *(len(r[0]) + 1 for r in rows)])
    w_dep = max([24, *(len(r[3]) + 1 for r in rows)])
    out(f"{'THING':<{w_thing}} {'ONLINE':<7} {'HEALTH':<10} {'DEPLOYMENT':<{w_dep}} COMPONENTS")
    for thing, online, health, dep, comps in rows:
        out(f"{thing:<{w_thing}} {online:<7} {health:<10} {dep:<{w_dep}} {comps}")
    return 0


def as_json(state: dict[str, Any], group: str | None) -> str:
    if group is not None:
        key = f"thinggroup/{group}"
        state = {"devices": [d for d in state["devices"] if group in d["groups"]],
                 "targets": {k: v for k, v in state["targets"].items() if k == key}}
    return json.dumps(state, indent=2, sort_keys=True)
