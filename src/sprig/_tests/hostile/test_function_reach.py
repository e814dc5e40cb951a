"""Hostile function code: a function that reaches for the core's state, credentials, another
function's code or host processes; a worker speaking garbage to its Runtime API or answering
for another request id; a function flooding its log. Each is refused (and the refusals logged),
and the neighbours keep working."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sprig._tests.reliability.support import function_component, invoke
from sprig.logs import rotated_files
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

OK = "def handler(event, context):\n    return {'ok': True}\n"

SNOOP = """
import os
def _try(path):
    try:
        if os.path.isdir(path):
            return "LISTED " + ",".join(sorted(os.listdir(path))[:5])
        with open(path, "rb") as f:
            return "READ %d bytes" % len(f.read(4096))
    except OSError as e:
        return "refused: " + type(e).__name__
def handler(event, context):
    out = {p: _try(p) for p in event["paths"]}
    procs = [p for p in os.listdir("/proc") if p.isdigit()]
    cmdlines = []
    for p in procs:
        try:
            cmdlines.append(open("/proc/%s/cmdline" % p, "rb").read().replace(b"\\0", b" ")
                            .decode(errors="replace"))
        except OSError:
            pass
    out["/proc"] = cmdlines
    out["uid"] = os.getuid()
    return out
"""


# Under NoContainer, a function runs as a plain process of its run-as user and reads what that
# user can. The victim here runs in a GreengrassContainer, so its code belongs to its sandbox
# uid (docs/isolation.md) and is not readable; only the names of the staged versions are (the
# package directories are the core's, 0755, as Greengrass's packages/ directory).
NO_CONTAINER_ALLOWED = ("artifacts/Victim",)


@pytest.mark.parametrize("isolation", ["GreengrassContainer", "NoContainer"])
def test_function_cannot_read_core_state_credentials_other_code_or_host_processes(
        core: CoreProcess, public_tmp: Path, isolation: str) -> None:
    check_snoop(core, public_tmp, isolation)


def check_snoop(core: CoreProcess, public_tmp: Path, isolation: str) -> None:
    out = public_tmp / "out"
    function_component(out, "Snoop", SNOOP, pinned=True, isolation=isolation)
    function_component(out, "Victim", OK + "SECRET_CODE = 'victim-code'\n", pinned=True)
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Snoop": "1.0.0", "Victim": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    layout = core.layout
    victim_code = layout.unarchived_dir("Victim", "1.0.0")
    secrets = [layout.state_db, Path(f"{layout.state_db}-wal"), layout.credentials,
               layout.secrets_key, layout.config_file, layout.core_log,
               layout.component_log("Victim"), layout.run / "children.json",
               victim_code / "lambda-artifact" / "app.py", layout.artifacts / "Victim"]
    paths = [str(p) for p in secrets if p.exists()]
    assert str(layout.state_db) in paths and str(layout.credentials) in paths
    core_pid = core.call("status")["pid"]
    host = ["/etc/shadow", "/root", f"/proc/{core_pid}/environ", f"/proc/{core_pid}/root",
            f"/proc/{core_pid}/fd", f"/proc/{core_pid}/mem"]
    if isolation == "NoContainer":       # in a PID namespace, pid 1 is the function itself
        host.append("/proc/1/environ")
    answer = invoke(core, "Snoop", {"paths": paths + host})
    assert answer["functionError"] is None, answer
    found = answer["payload"]
    assert found["uid"] != 0, "the function runs unprivileged"
    reached = {p: v for p, v in found.items() if p.startswith("/") and p != "/proc"
               and not str(v).startswith("refused")}
    if isolation == "NoContainer":
        reached = {p: v for p, v in reached.items() if not p.endswith(NO_CONTAINER_ALLOWED)}
    assert reached == {}, f"{isolation}: the function reached {reached}"
    cmdlines = found["/proc"]
    if isolation == "GreengrassContainer":   # its own PID namespace: only its own processes
        assert not any("sprig core run" in c for c in cmdlines), cmdlines
        assert len(cmdlines) <= 5, cmdlines
        assert all("bootstrap" in c or "python" in c or "bwrap" in c or not c
                   for c in cmdlines), cmdlines
    # else: without a PID namespace the host's process list is visible (Linux's default; hidepid
    # is the host's choice), but not the processes' environments, memory or files (above).
    assert invoke(core, "Victim")["payload"] == {"ok": True}


ROGUE = """
import http.client, json, os, socket, struct
PATH = os.environ["SPRIG_RUNTIME_API_SOCKET"]      # its own Runtime API (it has no TCP port)
PREFACE = b"\\x00sprig-frames/1\\n"

class UnixHTTP(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(PATH)

def _raw(data):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(PATH)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    s.close()
    return got.split(b"\\r\\n", 1)[0].decode(errors="replace")

def _frame(kind, header, body=b""):
    head = json.dumps(header).encode()
    return struct.pack(">cII", kind, len(head), len(body)) + head + body

def _status(method, path, body=b"", headers=None):
    c = UnixHTTP("localhost", timeout=5)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status

def handler(event, context):
    base = "/2018-06-01/runtime/invocation/"
    return {
        "other_id": _status("POST", base + event["other"] + "/response", b'"stolen"'),
        "other_error": _status("POST", base + event["other"] + "/error", b"{}"),
        "bad_path": _status("POST", "/2018-06-01/runtime/../../etc/passwd", b""),
        "bad_method": _status("DELETE", base + context.aws_request_id + "/response"),
        "garbage": _raw(b"\\x01\\x02garbage\\r\\n\\r\\n"),
        "bad_length": _raw(b"POST " + (base + "x/response").encode()
                           + b" HTTP/1.1\\r\\nContent-Length: -5\\r\\n\\r\\n"),
        "huge": _status("POST", base + "nope/response", b"x" * (7 * 1024 * 1024)),
        # the framed lane: refusals close the connection without a byte
        "frame_other_id": _raw(PREFACE + _frame(b"R", {"id": event["other"]}, b'"stolen"')),
        "frame_garbage": _raw(PREFACE + b"\\xff" * 64),
        "frame_huge_header": _raw(PREFACE + struct.pack(">cII", b"R", 2**31, 0)),
        "mine": context.aws_request_id,
    }
"""


def test_worker_speaking_garbage_or_answering_for_another_id_is_refused(
        core: CoreProcess, public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Rogue", ROGUE, pinned=True, memory_kb="131072", timeout="30")
    function_component(out, "Neighbour", OK, pinned=True)
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Rogue": "1.0.0", "Neighbour": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    first = invoke(core, "Neighbour")
    answer = invoke(core, "Rogue", {"other": first["requestId"]})
    assert answer["functionError"] is None, answer
    got = answer["payload"]
    print("rogue worker:", json.dumps(got))
    for key in ("other_id", "other_error", "bad_path", "bad_method", "huge"):
        assert isinstance(got[key], int) and 400 <= got[key] < 500, (key, got)
    for key in ("garbage", "bad_length"):
        assert got[key] == "" or " 400 " in got[key], (key, got)
    for key in ("frame_other_id", "frame_garbage", "frame_huge_header"):
        assert got[key] == "", (key, got)
    # Its own invocation still ended with its own answer; the neighbour is unharmed.
    assert answer["requestId"] == got["mine"]
    assert invoke(core, "Neighbour")["payload"] == {"ok": True}
    assert invoke(core, "Rogue", {"other": "x"})["functionError"] is None
    logged = core.log("Rogue") + core.layout.core_log.read_text(errors="replace")
    assert first["requestId"] in logged or "refus" in logged.lower() or "404" in logged, \
        "the refusals are logged"


FLOOD = """
import sys
def handler(event, context):
    line = "x" * 1023 + "\\n"
    for _ in range(event["kb"]):
        sys.stdout.write(line)
    sys.stdout.flush()
    return {"ok": True}
"""


def test_function_flooding_its_log_is_bounded_by_rotation(
        core: CoreProcess, public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Flood", FLOOD, pinned=True, timeout="60")
    function_component(out, "Quiet", OK, pinned=True)
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Flood": "1.0.0", "Quiet": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    for _ in range(3):
        assert invoke(core, "Flood", {"kb": 10 * 1024})["functionError"] is None
    logs = core.layout.logs
    files = [logs / "Flood.log", *rotated_files(logs / "Flood.log")]
    used = sum(p.stat().st_size for p in files)
    print(f"30 MB written to stdout; logs/Flood.log and its rotations hold "
          f"{used / 2**20:.1f} MB in {len(files)} files")
    assert len(files) >= 5, "it did rotate"
    assert used <= 11 * 2**20, used            # 10 MB per component, plus the open file
    assert invoke(core, "Quiet")["payload"] == {"ok": True}
    assert "END RequestId" in core.log("Quiet")
    assert os.path.getsize(core.layout.core_log) < 2**20, "the flood is not in the core's log"
