"""Acknowledged Event invocations survive ``kill -9`` (issue 12 item 5).

Each trial sends Event invocations from two clients at once (the management API, as ``sprig
invoke`` does, and boto3 through the SigV4 invoke API) while the core is killed with SIGKILL at
a random moment; the ids answered 202 are the acknowledged ones. The core restarts (and, in some
trials, is killed again while it queues the stored events, and restarts again); a synchronous
invocation of the pinned function — queued behind every stored event — then tells when they
have all run. Every acknowledged id must be in the function's record (in its work directory)
with its request id unchanged, or have finished as failed (its worker died under it: a failed
event is finished, by the contract; counted and printed); duplicates are allowed (at least
once). At the end, after a graceful stop, nothing is left in ``state.db``'s pending events.

``SPRIG_DURABLE_TRIALS`` trials (default 4; run 50 or more by hand); the seed is printed and
can be fixed with ``SPRIG_DURABLE_SEED``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import threading
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from sprig._tests.reliability.support import function_component, invoke
from sprig.cli.client import ApiError
from sprig.local_api.credentials import load_credentials
from sprig.state.db import EventStore, PendingEvent
from sprig.testing import CoreProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRIALS = int(os.environ.get("SPRIG_DURABLE_TRIALS", "4"))
SEED = int(os.environ.get("SPRIG_DURABLE_SEED", str(random.SystemRandom().randrange(1 << 30))))
PER_CLIENT = 150          # at most, per client and trial (the kill usually comes first)

# A little work per event, so that a backlog is queued when the core is killed.
RECORDER = '''
import time
def handler(event, context):
    if event.get("barrier"):
        return {"barrier": True}
    time.sleep(0.004)
    with open("seen.txt", "a") as f:
        f.write(context.aws_request_id + "\\n")
    return {"ok": True}
'''


def management_sender(core: CoreProcess) -> Callable[[int], str]:
    def send(i: int) -> str:
        result = core.call("invoke", {
            "function": "Recorder", "invocationType": "Event",
            "payload": base64.b64encode(json.dumps({"i": i}).encode()).decode()})
        assert result["statusCode"] == 202, result
        return str(result["requestId"])
    return send


def boto3_sender(core: CoreProcess) -> Callable[[int], str]:
    creds = load_credentials(core.layout.credentials)
    lam = boto3.client("lambda", endpoint_url=core.endpoints()["lambda"],
                       region_name="us-east-1", aws_access_key_id=creds.access_key_id,
                       aws_secret_access_key=creds.secret_access_key,
                       config=Config(retries={"total_max_attempts": 1}, read_timeout=20))

    def send(i: int) -> str:
        answer = lam.invoke(FunctionName="Recorder", InvocationType="Event",
                            Payload=json.dumps({"i": i}).encode())
        assert answer["StatusCode"] == 202, answer
        return str(answer["ResponseMetadata"]["RequestId"])
    return send


def burst(core: CoreProcess, kill_after_s: float) -> list[str]:
    """Send from both clients until the core dies (killed after ``kill_after_s``); the ids
    answered 202."""
    acked: list[str] = []
    lock = threading.Lock()
    senders = [management_sender(core), boto3_sender(core)]

    def client(send: Callable[[int], str]) -> None:
        for i in range(PER_CLIENT):
            try:
                rid = send(i)
            except Exception:
                return                  # the core is gone: not acknowledged
            with lock:
                acked.append(rid)

    threads = [threading.Thread(target=client, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    killed = threading.Event()
    timer = threading.Timer(kill_after_s, lambda: (core.kill(), killed.set()))
    timer.start()
    for t in threads:
        t.join()
    timer.join()
    assert killed.is_set()
    return acked


def tail(path: Path, n: int = 60) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return f"-- {path.name}:\n" + "\n".join(lines[-n:])


def seen(core: CoreProcess) -> list[str]:
    path = core.layout.work_dir("Recorder") / "seen.txt"
    return path.read_text().split() if path.exists() else []


def recover(core: CoreProcess, rng: random.Random) -> str:
    """Restart (maybe killing the restarted core once more while it queues the stored
    events); returns what happened, for the trial's line."""
    core.start()
    note = "restart"
    if rng.random() < 0.25:
        core.kill()
        core.start()
        note = "restart, kill -9 while recovering, restart"
    # Pinned: one worker, FIFO. Queued behind every stored event, so when it answers they
    # have all run. If the worker dies meanwhile, the kernel restarts the function (the
    # barrier fails with "stopped") and the events not finished are queued again: ask again.
    for attempt in range(3):
        core.wait_state("Recorder", "RUNNING", timeout_s=60)
        try:
            assert invoke(core, "Recorder", {"barrier": True})["payload"] == {"barrier": True}
            return note
        except ApiError as e:
            if attempt == 2 or "Recorder" not in str(e):
                raise
            note += f"; the function restarted ({e})"
    raise AssertionError("unreachable")


def failed_events(core: CoreProcess) -> set[str]:
    """Events that finished as failed (e.g. Runtime.ExitError: the worker died): deleted from
    the store as finished, by the at-least-once contract, without a record of their own."""
    found = re.findall(r"event ([0-9a-f-]{36}) failed:", core.log("Recorder"))
    return set(found)


def test_acknowledged_events_survive_kill_9(public_tmp: Path) -> None:
    rng = random.Random(SEED)
    print(f"seed {SEED} (SPRIG_DURABLE_SEED), {TRIALS} trials (SPRIG_DURABLE_TRIALS)")
    out = public_tmp / "out"
    function_component(out, "Recorder", RECORDER, pinned=True, timeout="30")
    core = CoreProcess(public_tmp / "root").start()
    total = lost = duplicates = failures = 0
    try:
        assert core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                           merge={"Recorder": "1.0.0"})["status"] == "SUCCEEDED"
        for trial in range(TRIALS):
            before = len(seen(core))
            acked = burst(core, kill_after_s=rng.uniform(0.0, 0.6))
            try:
                note = recover(core, rng)
            except Exception as e:
                raise AssertionError(f"seed {SEED} trial {trial}: recovery failed: {e}\n"
                                     f"{tail(core.layout.core_log)}\n"
                                     f"{tail(core.layout.component_log('Recorder'), 400)}") from e
            ran = seen(core)[before:]
            failed = (set(acked) - set(ran)) & failed_events(core)
            missing = set(acked) - set(ran) - failed
            total += len(acked)
            lost += len(missing)
            failures += len(failed)
            duplicates += len(ran) - len(set(ran))
            print(f"trial {trial}: {len(acked)} acknowledged, {len(ran)} runs, "
                  f"{len(missing)} lost, {len(failed)} failed ({note})")
            assert not missing, (f"seed {SEED} trial {trial}: acknowledged but never run: "
                                 f"{sorted(missing)[:5]}")
        core.stop()
        store = EventStore(core.layout.state_db)
        left = store.pending()
        assert left == [], f"finished events still stored: {[e.request_id for e in left][:5]}"
        # An event left by a function that a deployment removed is deleted at the next start.
        store.apply([PendingEvent("gone-1", "Removed", b"{}", None, "api", 0.0)], [])
        store.close()
        core.start()
        core.stop()
        store = EventStore(core.layout.state_db)
        assert store.pending() == []
        store.close()
        assert "deleted 1 stored Event invocation(s) of functions no longer deployed" in \
            (core.layout.core_log).read_text()
    finally:
        if core.proc is not None:
            core.stop()
    print(f"Events lost: {lost} of {total} over {TRIALS} trials "
          f"({duplicates} ran more than once: at least once, not exactly once; {failures} "
          "finished as failed with their worker)")
    assert lost == 0 and total > 0
