"""Simulated fleet devices: the device protocol only (``docs/fleet.md``), many per process.

``python -m bench.fleet_sim PORT FIRST COUNT GROUP FAIL_PERCENT`` runs devices ``sim00000``...
each one an MQTT connection (aiomqtt, one asyncio loop: no FD_SETSIZE ceiling as with paho's
select loop) that announces itself as a device does (retained presence with a last will,
retained health with its thing group), takes executions from its notify topic and answers
IN_PROGRESS, then after 50-200 ms of "work" SUCCEEDED (or FAILED for FAIL_PERCENT of the
devices, chosen by their number so that failures are spread through the rollout). Prints
``ready`` once every device is subscribed, and runs until killed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import Any

PREFIX = "sprig"


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


async def device(port: int, thing: str, group: str, fails: bool, ready: asyncio.Event,
                 counter: list[int], total: int) -> None:
    import aiomqtt

    presence = f"{PREFIX}/things/{thing}/presence"
    will = aiomqtt.Will(presence, json.dumps({"thing": thing, "status": "OFFLINE",
                                              "thingGroups": [group]}), 1, True)
    async with aiomqtt.Client("127.0.0.1", port, identifier=thing, will=will,
                              keepalive=600, max_inflight_messages=100) as client:
        await client.publish(presence, json.dumps({"thing": thing, "status": "ONLINE",
                                                   "thingGroups": [group]}), 1, retain=True)
        health = {"ggcVersion": "sim", "platform": "linux", "architecture": "amd64",
                  "thing": thing, "thingGroups": [group], "overallDeviceStatus": "HEALTHY",
                  "sequenceNumber": 1, "timestamp": _now_ms(), "messageType": "COMPLETE",
                  "trigger": "NUCLEUS_LAUNCH", "chunkInfo": {"chunkId": 1, "totalChunks": 1},
                  "components": []}
        await client.publish(f"{PREFIX}/things/{thing}/greengrassv2/health/json",
                             json.dumps(health), 1, retain=True)
        await client.subscribe(f"{PREFIX}/things/{thing}/jobs/+/+/notify", qos=1)
        counter[0] += 1
        if counter[0] == total:
            ready.set()
        done: set[str] = set()
        async for m in client.messages:
            if not isinstance(m.payload, bytes) or not m.payload:
                continue
            execution: dict[str, Any] = json.loads(m.payload).get("execution") or {}
            job = execution.get("jobId")
            if execution.get("status") != "QUEUED" or job in done:
                continue
            done.add(str(job))
            update = m.topic.value.removesuffix("/notify") + "/update"
            ts = (execution.get("jobDocument") or {}).get("creationTimestamp")
            await client.publish(update, json.dumps({
                "jobId": job, "thingName": thing, "status": "IN_PROGRESS", "statusDetails": {},
                "creationTimestamp": ts, "timestamp": _now_ms()}), 1, retain=True)
            await asyncio.sleep(random.uniform(0.05, 0.2))
            details = {"detailed-deployment-status": "FAILED_ROLLBACK_COMPLETE",
                       "deployment-failure-cause": "simulated failure",
                       "deployment-error-stack": ["DEPLOYMENT_FAILURE", "COMPONENT_BROKEN"],
                       "deployment-error-types": ["UNKNOWN_ERROR"]} if fails else {
                "detailed-deployment-status": "SUCCESSFUL"}
            await client.publish(update, json.dumps({
                "jobId": job, "thingName": thing, "status": "FAILED" if fails else "SUCCEEDED",
                "statusDetails": details, "creationTimestamp": ts, "timestamp": _now_ms()}),
                1, retain=True)


async def main(port: int, first: int, count: int, group: str, fail_percent: float) -> None:
    ready = asyncio.Event()
    counter = [0]
    tasks = []
    for i in range(first, first + count):
        # Failures spread evenly: device i fails when the running count of failures steps up.
        fails = int((i + 1) * fail_percent // 100) > int(i * fail_percent // 100)
        tasks.append(asyncio.create_task(device(port, f"sim{i:05d}", group, fails, ready,
                                                counter, count)))
        if len(tasks) % 50 == 0:
            await asyncio.sleep(0.05)            # do not flood the broker with CONNECTs
    await ready.wait()
    print("ready", flush=True)
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    p, f, c, g, pct = sys.argv[1:6]
    asyncio.run(main(int(p), int(f), int(c), g, float(pct)))
