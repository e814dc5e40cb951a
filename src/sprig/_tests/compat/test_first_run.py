"""A new user's first minutes: the README's first command runs without a traceback, and every
way the CLI fails is one plain sentence and a non-zero exit."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

from sprig.testing import CoreProcess, write_recipe

REPO = Path(__file__).resolve().parents[4]


def sprig(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sprig", *args], capture_output=True,
                          text=True, timeout=timeout)


def one_sentence(done: subprocess.CompletedProcess[str]) -> str:
    """The CLI failed the way every CLI failure must: non-zero, one ``sprig: …`` line."""
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sprig: "), done.stderr
    return lines[0]


def test_the_readme_demo_runs_without_a_traceback(public_tmp: Path) -> None:
    """``./scripts/demo`` (SPRIG_DEMO_EXIT=1 ends it after the tour): every step, the boto3
    one included — its set-up installs what it needs (``scripts/setup --demo``)."""
    env = {**os.environ, "SPRIG_DEMO_EXIT": "1", "SPRIG_DEMO_ROOT": str(public_tmp / "demo")}
    done = subprocess.run([str(REPO / "scripts" / "demo")], capture_output=True, text=True,
                          env=env, timeout=900, cwd=REPO)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out
    assert "boto3 list_functions -> EventGreeter, JavaHello, NodeGreeter, PythonCounter" in out
    assert "boto3 invoke PythonCounter -> 200" in out


def test_status_when_the_core_resets_the_connection(public_tmp: Path) -> None:
    """A core that dies while it answers (the socket exists, the connection is reset)."""
    root = public_tmp / "root"
    (root / "run").mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(root / "run" / "sprig.sock"))
    listener.listen(1)

    def reset_one() -> None:
        conn, _ = listener.accept()
        conn.recv(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    thread = threading.Thread(target=reset_one, daemon=True)
    thread.start()
    try:
        line = one_sentence(sprig("status", "--root", str(root)))
    finally:
        thread.join(10)
        listener.close()
    assert "the connection to the core" in line and "was lost during status" in line


def test_no_core_and_unreadable_input_are_one_sentence(public_tmp: Path) -> None:
    root = str(public_tmp / "nothing")
    assert "no Sprig core is running" in one_sentence(sprig("status", "--root", root))
    assert "no Sprig core is running" in one_sentence(
        sprig("deployment", "create", "--root", root, "--merge", "a=1.0.0", "--wait"))
    missing = str(public_tmp / "missing.json")
    assert "cannot read" in one_sentence(
        sprig("invoke", "Fn", "--payload", f"@{missing}", "--root", root))
    assert "cannot read" in one_sentence(
        sprig("deployment", "create", "--root", root, "--update-config", f"@{missing}"))


def test_wait_on_a_core_that_dies_is_one_sentence(public_tmp: Path) -> None:
    """``--wait`` streams the result (no client timeout while the deployment takes its time);
    if the core goes away meanwhile the CLI says so in a sentence naming the deployment."""
    core = CoreProcess(public_tmp / "root").start()
    try:
        recipes = public_tmp / "recipes"
        write_recipe(recipes, {
            "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Slow",
            "ComponentVersion": "1.0.0",
            "Manifests": [{"Platform": {"os": "all"},
                           "Lifecycle": {"Startup": "exec sleep 600"}}]})
        cli = subprocess.Popen(
            [sys.executable, "-m", "sprig", "deployment", "create", "--root", str(core.root),
             "--recipe-dir", str(recipes), "--merge", "com.example.Slow=1.0.0", "--wait"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        core.wait_state("com.example.Slow", "STARTING")
        deployment = core.call("deployment.list")[0]["deploymentId"]
        core.kill()
        out, err = cli.communicate(timeout=60)
    finally:
        core.kill()
    line = one_sentence(subprocess.CompletedProcess(cli.args, cli.returncode, out, err))
    assert deployment in line and "was queued, but waiting for it failed" in line
