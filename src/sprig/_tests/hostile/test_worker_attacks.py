"""Attacks on another function's worker, from a function deployed the ordinary way.

Each test deploys a victim and an attacker (``sprig lambda import`` shapes, default run-as user)
and has the attacker go after the victim for real, from inside its own process: taking the
victim's invocations through its Runtime API (TCP listener and Unix socket), reading its
environment and memory, writing into its private ``/tmp``, signalling or tracing it, and using
its stolen ``SVCUID`` on the Greengrass IPC socket. Every attack must fail, the victim must keep
answering with its own results, and the core log must name the attacker.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from sprig._tests.reliability.support import function_component, invoke
from sprig.testing import CoreProcess

MODES = ["GreengrassContainer", "NoContainer"]

VICTIM = """
import os
SECRET = os.environ.get("VICTIM_SECRET", "")
def handler(event, context):
    return {"victim": True, "got": event, "pid": os.getpid()}
"""

# Camps on every loopback listener and every Runtime API Unix socket it can find (except its
# own), asking for the next invocation; tells the test it is ready through a FIFO in its work
# directory; then posts a forged answer for whatever it received.
STEALER = r'''
import glob, json, os, socket, struct, threading, time

def loopback_listeners():
    ports = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            ip, port = f[1].split(":")
            if f[3] == "0A" and ip in ("0100007F", "00000000000000000000000001000000"):
                ports.append(("127.0.0.1" if len(ip) == 8 else "::1", int(port, 16)))
    return ports

def unix_sockets(told):
    # the sockets' directories (under the core's root, or /tmp) are not listable: found by
    # the path of its own socket's neighbours, whatever /tmp shows, and the directories the
    # test tells it (the worst case: an attacker that learned where they are)
    mine = os.environ.get("SPRIG_RUNTIME_API_SOCKET", "")
    found = glob.glob("/tmp/sprig-rapi-*/*.sock")
    for d in told:
        found += glob.glob(os.path.join(d, "*.sock"))
    if mine:
        found += glob.glob(os.path.join(os.path.dirname(os.path.dirname(mine)), "*", "*.sock"))
    return sorted(set(p for p in found if p != mine))

def connect(target):
    if isinstance(target, str):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(target)
        return s
    return socket.create_connection(target, timeout=2)

def recv(s, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline")
    s.settimeout(left)
    return s.recv(65536)

def ask_next(s, deadline):
    s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = recv(s, deadline)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.decode(errors="replace").split("\r\n"):
        if line.lower().startswith("content-length:"):
            n = int(line.split(":", 1)[1])
            while len(body) < n:
                chunk = recv(s, deadline)
                if not chunk:
                    break
                body += chunk
    return head.decode(errors="replace"), body.decode(errors="replace")

PREFACE = b"\x00sprig-frames/1\n"

def ask_next_frames(s, deadline):
    # Sprig's framed lane (what its Python runtime speaks on the Unix socket): "N", then a
    # "J" frame; returned in the HTTP shape so the rest of the attack reads it alike
    s.sendall(PREFACE + struct.pack(">cII", b"N", 2, 0) + b"{}")
    data = b""
    while True:
        if len(data) >= 9:
            kind, hlen, blen = struct.unpack(">cII", data[:9])
            if len(data) >= 9 + hlen + blen:
                break
        chunk = recv(s, deadline)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    header = json.loads(data[9:9 + hlen])
    head = "FRAME %s\r\n" % kind.decode() + "\r\n".join("%s: %s" % kv for kv in header.items())
    return head, data[9 + hlen:9 + hlen + blen].decode(errors="replace")

def forge_frames(s, rid, forged):
    header = json.dumps({"id": rid}).encode()
    s.sendall(struct.pack(">cII", b"R", len(header), len(forged)) + header + forged)

def camp(target, results, sent, deadline):
    # Asks again and again (a refusal now may be a success once the victim is between two
    # invocations), until the deadline; records what it got and forges an answer.
    tries, outcomes, announced = 0, set(), False
    while time.monotonic() < deadline:
        try:
            s = connect(target)
            while time.monotonic() < deadline:
                if not announced:
                    announced = True
                    sent.release()
                tries += 1
                framed = isinstance(target, str) and tries % 2 == 0
                if framed:             # a new connection per lane: the first byte chooses it
                    s.close()
                    s = connect(target)
                head, body = (ask_next_frames if framed else ask_next)(s, deadline)
                outcomes.add(head.split("\r\n", 1)[0])
                rid = [l.split(":", 1)[1].strip() for l in head.split("\r\n")
                       if l.lower().startswith("lambda-runtime-aws-request-id:")]
                if rid and ":function:Victim:" not in head:
                    # another core's function (a test may run beside other cores): leave it
                    s.close()
                    results.append({"target": str(target), "foreign": True})
                    return
                if rid and framed:
                    forge_frames(s, rid[0], b'{"forged": true}')
                    results.append({"target": str(target), "head": head[:400],
                                    "body": body[:400]})
                elif rid:
                    forged = b'{"forged": true}'
                    s.sendall(b"POST /2018-06-01/runtime/invocation/" + rid[0].encode()
                              + b"/response HTTP/1.1\r\nHost: x\r\nContent-Length: "
                              + str(len(forged)).encode() + b"\r\n\r\n" + forged)
                    results.append({"target": str(target), "head": head[:400],
                                    "body": body[:400]})
            s.close()
        except OSError as e:
            outcomes.add("refused: " + type(e).__name__)
            if not announced:
                announced = True
                sent.release()
            if isinstance(e, (ConnectionRefusedError, FileNotFoundError, PermissionError)):
                break          # nobody listens (a core that is gone), or not ours to open
    results.append({"target": str(target), "tries": tries, "outcomes": sorted(outcomes)})

def handler(event, context):
    # Keeps scanning for new listeners (a worker started after the attack began, e.g. an
    # on-demand one, gets a new port) and camps on each as soon as it appears.
    own = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    results, sent, seen, threads = [], threading.Semaphore(0), set(), []
    deadline = time.monotonic() + event["seconds"]
    signalled = False
    while time.monotonic() < deadline:
        new = [t for t in loopback_listeners() + unix_sockets(event.get("socket_dirs", []))
               if t not in seen and (isinstance(t, str) or "%s:%d" % t != own)]
        for t in new:
            seen.add(t)
            threads.append(threading.Thread(target=camp, args=(t, results, sent, deadline),
                                            daemon=True))
            threads[-1].start()
        for _ in new:
            sent.acquire(timeout=5)
        if not signalled:
            signalled = True
            with open(event["fifo"], "w") as f:
                f.write("ready\n")
    for t in threads:
        t.join(max(0.0, deadline + 3 - time.monotonic()))
    return {"targets": sorted(str(t) for t in seen), "results": list(results)}
'''


def _fifo(core: CoreProcess, component: str) -> Path:
    """A FIFO in the component's work directory, writable by its worker."""
    work = core.layout.work_dir(component)
    fifo = work / "ready.fifo"
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo, 0o666)
    os.chmod(fifo, 0o666)
    return fifo


def _wait_fifo(fifo: Path, timeout: float) -> str:
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"the attacker did not signal within {timeout} s"
        # A writer may open late: wait for data, not for the first wake-up on EOF.
        data = b""
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], timeout)
            assert ready, "the attacker went quiet"
            chunk = os.read(fd, 100)
            if not chunk:
                continue
            data += chunk
        return data.decode()
    finally:
        os.close(fd)


def _deploy(core: CoreProcess, out: Path, *names: str) -> None:
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge=dict.fromkeys(names, "1.0.0"))
    assert result["status"] == "SUCCEEDED", result


@pytest.mark.parametrize("victim_pinned", [False, True], ids=["on-demand", "pinned"])
@pytest.mark.parametrize("victim_mode", MODES)
@pytest.mark.parametrize("attacker_mode", MODES)
def test_a_function_cannot_take_another_workers_invocations(
        core: CoreProcess, public_tmp: Path, attacker_mode: str, victim_mode: str,
        victim_pinned: bool) -> None:
    """The victim is invoked again and again while the attacker camps on every Runtime API it
    can find; an on-demand victim starts a new worker (a new listener) during the attack."""
    out = public_tmp / "out"
    function_component(out, "Victim", VICTIM, pinned=victim_pinned, isolation=victim_mode)
    function_component(out, "Stealer", STEALER, pinned=True, isolation=attacker_mode,
                       timeout="60", memory_kb="65536")
    _deploy(core, out, "Victim", "Stealer")
    invoke(core, "Victim", {"warm": 1})        # its sockets' directory exists from now on
    fifo = _fifo(core, "Stealer")
    # Python workers have no TCP port: the attacker is told where the Runtime API sockets are
    socket_dirs = [str(d) for d in core.layout.runtime_sockets.iterdir()]
    attack: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: attack.update(
        invoke(core, "Stealer", {"fifo": str(fifo), "seconds": 6,
                                 "socket_dirs": socket_dirs})))
    thread.start()
    answers = []
    try:
        _wait_fifo(fifo, 30)
        # While the attacker camps, the victim is invoked again and again: each gap between
        # two of its invocations is a chance for the attacker's /next to come first.
        while thread.is_alive() and len(answers) < 200:
            answers.append(invoke(core, "Victim", {"card": "4111-1111-1111-1111"}))
    finally:
        thread.join(60)
    assert attack.get("functionError") is None, attack
    stolen = attack["payload"]
    print("stealer:", json.dumps(stolen)[:2000])
    assert stolen["targets"], "the attacker found listeners to try"
    leaked = [r for r in stolen["results"] if "4111" in r.get("body", "")
              or ":function:Victim:" in r.get("head", "")]
    assert leaked == [], f"the attacker received another worker's invocation: {leaked}"
    # The victim answered every caller itself, with its own result.
    assert len(answers) >= 5, "the victim was invoked while the attacker camped"
    for answer in answers:
        assert answer["functionError"] is None, answer
        assert answer["payload"]["victim"] is True, answer
        assert answer["payload"]["got"] == {"card": "4111-1111-1111-1111"}
    assert core.states()["Victim"] == "RUNNING"
    # The victim's Runtime API socket: a sandbox does not even see it (only its own socket's
    # directory is mounted); a process of another uid cannot connect (0600, the worker's own
    # user); one of the same uid is refused unanswered and named in the core log.
    tried = [r for r in stolen["results"]                  # this core's sockets, not /tmp's
             if r["target"].startswith(tuple(socket_dirs)) and "tries" in r]
    if attacker_mode == "GreengrassContainer":
        assert tried == [], tried
    elif victim_mode == "GreengrassContainer":
        assert tried and all(r["outcomes"] == ["refused: PermissionError"] for r in tried), tried
    else:
        assert tried, stolen["results"]
        core_log = core.layout.core_log.read_text(errors="replace")
        assert re.search(r"[Rr]untime API of Victim.*refused.*Stealer", core_log), \
            core_log[-3000:]


SNOOPER = r'''
import ctypes, json, os, signal

def victim_pids(name):
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cg = open("/proc/%s/cgroup" % p).read()
            cmd = open("/proc/%s/cmdline" % p, "rb").read()
        except OSError:
            continue
        if ("/r" in cg and "-" + name + "-" in cg) or (name.encode() in cmd
                                                       and b"bwrap" not in cmd):
            pids.append(int(p))
    return pids

def attempt(fn):
    try:
        return "WORKED: " + str(fn())[:200]
    except Exception as e:
        return "refused: " + type(e).__name__

libc = ctypes.CDLL(None, use_errno=True)

def ptrace_attach(pid):
    PTRACE_ATTACH, PTRACE_DETACH = 16, 17
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "ptrace")
    os.waitpid(pid, 0)
    libc.ptrace(PTRACE_DETACH, pid, None, None)
    return "attached"

def read_mem(pid):
    for line in open("/proc/%d/maps" % pid):
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if "r" in line.split()[1]:
            with open("/proc/%d/mem" % pid, "rb") as f:
                f.seek(lo)
                return len(f.read(64))

def write_tmp(pid):
    path = "/proc/%d/root/tmp/pwned" % pid
    with open(path, "w") as f:
        f.write("pwned")
    return path

def handler(event, context):
    out = {}
    pids = victim_pids(event["victim"])
    for pid in pids:
        out[str(pid)] = {
            "environ": attempt(lambda: open("/proc/%d/environ" % pid, "rb").read()),
            "mem": attempt(lambda: read_mem(pid)),
            "tmp": attempt(lambda: write_tmp(pid)),
            "ptrace": attempt(lambda: ptrace_attach(pid)),
            "signal": attempt(lambda: os.kill(pid, signal.SIGSTOP)),
        }
    for pid in pids:                      # undo a stop that worked, so the test can go on
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    return {"pids": pids, "attempts": out}
'''


@pytest.mark.parametrize("victim_mode", ["GreengrassContainer"])
def test_a_nocontainer_function_of_the_same_user_cannot_touch_a_container_worker(
        core: CoreProcess, public_tmp: Path, victim_mode: str) -> None:
    """The attacker runs as the same user (the default), without a container: it sees the
    host's processes, so it finds the victim's worker; it must not be able to read, trace,
    signal or write into it."""
    out = public_tmp / "out"
    function_component(out, "Victim", VICTIM, pinned=True, isolation=victim_mode)
    function_component(out, "Snooper", SNOOPER, pinned=True, isolation="NoContainer",
                       timeout="30")
    _deploy(core, out, "Victim", "Snooper")
    before = invoke(core, "Victim", {"n": 1})["payload"]
    answer = invoke(core, "Snooper", {"victim": "Victim"})
    assert answer["functionError"] is None, answer
    found = answer["payload"]
    print("snooper:", json.dumps(found)[:3000])
    assert found["pids"], "the attacker found the victim's processes (it sees the host's)"
    worked = {pid: {k: v for k, v in tries.items() if v.startswith("WORKED")}
              for pid, tries in found["attempts"].items()}
    worked = {pid: w for pid, w in worked.items() if w}
    assert worked == {}, f"the attacker reached the victim's worker: {worked}"
    after = invoke(core, "Victim", {"n": 2})["payload"]
    assert after["pid"] == before["pid"], "the victim's worker was not disturbed"
    assert core.states()["Victim"] == "RUNNING"


IMPERSONATOR = r'''
import os
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

def handler(event, context):
    os.environ["SVCUID"] = event["token"]
    try:
        client = GreengrassCoreIPCClientV2()
    except Exception as e:
        return {"connected": False, "error": type(e).__name__ + ": " + str(e)[:300]}
    try:
        got = client.get_configuration(component_name=event["victim"], key_path=[])
        return {"connected": True, "config": str(got.value)[:300]}
    except Exception as e:
        return {"connected": True, "error": type(e).__name__ + ": " + str(e)[:300]}
    finally:
        client.close()
'''


def _bundle_awsiotsdk(code: Path) -> None:
    import awscrt
    import awsiot

    for module in (awsiot, awscrt):
        shutil.copytree(Path(str(module.__file__)).parent, code / module.__name__)
    for so in Path(str(awscrt.__file__)).parent.parent.glob("_awscrt*.so"):
        shutil.copy(so, code / so.name)


def _environ_of(core: CoreProcess, component: str) -> dict[bytes, bytes]:
    """The environment of the victim's worker, read by the test (root), as an attacker would
    wish to: how a token could leak."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        fields = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        if (fields.get(b"AWS_LAMBDA_FUNCTION_NAME") == component.encode()
                and fields.get(b"SPRIG_COMPONENT_ROOT") == str(core.root).encode()
                and b"SVCUID" in fields):
            return fields
    raise AssertionError(f"no process of {component} found")


@pytest.mark.parametrize("victim_mode", MODES)
@pytest.mark.parametrize("attacker_mode", MODES)
def test_a_stolen_svcuid_is_useless_to_another_process(
        core: CoreProcess, public_tmp: Path, attacker_mode: str, victim_mode: str) -> None:
    """However the attacker got the victim's token (here the test hands it over), the IPC
    server accepts it only from the victim's own processes."""
    out = public_tmp / "out"
    function_component(out, "Victim", VICTIM, pinned=True, isolation=victim_mode)
    code = public_tmp / "imp-code"
    code.mkdir()
    (code / "app.py").write_text(IMPERSONATOR)
    _bundle_awsiotsdk(code)
    from sprig.lambda_import.importer import import_function
    from sprig.lambda_import.params import ImportFlags

    import_function(code, out, ImportFlags(name="Impersonator", runtime="python3.11",
                                           handler="app.handler", pinned=True,
                                           isolation=attacker_mode, memory_kb="262144",
                                           timeout="20"))
    _deploy(core, out, "Victim", "Impersonator")
    token = _environ_of(core, "Victim")[b"SVCUID"].decode()
    answer = invoke(core, "Impersonator", {"token": token, "victim": "Victim"})
    assert answer["functionError"] is None, answer
    got = answer["payload"]
    print("impersonator:", got)
    assert got["connected"] is False, f"the stolen token was accepted: {got}"
    core_log = core.layout.core_log.read_text(errors="replace")
    assert re.search(r"SVCUID of Victim.*refused.*Impersonator", core_log), core_log[-3000:]
    assert invoke(core, "Victim", {"n": 1})["payload"]["victim"] is True


V1_THIEF = r'''
import os
def handler(event, context):
    # The stolen V1 token replaces its own before the SDK reads the environment.
    os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = event["token"]
    import greengrasssdk
    try:
        value = greengrasssdk.client("secretsmanager").get_secret_value(
            SecretId="db-password")["SecretString"]
        return {"stolen": value}
    except Exception as e:
        return {"refused": type(e).__name__ + ": " + str(e)[:300]}
'''

V1_OWNER = r'''
import greengrasssdk
def handler(event, context):
    return {"mine": greengrasssdk.client("secretsmanager").get_secret_value(
        SecretId="db-password")["SecretString"]}
'''


@pytest.mark.parametrize("victim_mode", MODES)
def test_a_stolen_v1_sdk_token_reads_no_secret(core: CoreProcess, public_tmp: Path,
                                               victim_mode: str) -> None:
    """The victim may read a secret through the V1 SDK; a NoContainer function of the same
    user, holding the victim's token, may not: the V1 endpoint checks who connects."""
    import greengrasssdk

    from sprig.lambda_import.importer import import_function
    from sprig.lambda_import.params import ImportFlags

    out = public_tmp / "out"
    for name, code, mode in (("Owner", V1_OWNER, victim_mode),
                             ("Thief", V1_THIEF, "NoContainer")):
        code_dir = public_tmp / f"code-{name}"
        code_dir.mkdir()
        (code_dir / "app.py").write_text(code)
        shutil.copytree(Path(str(greengrasssdk.__file__)).parent, code_dir / "greengrasssdk")
        import_function(code_dir, out, ImportFlags(
            name=name, version="1.0.0", runtime="python3.11", handler="app.handler",
            pinned=True, isolation=mode, timeout="20"))
    policy = {"aws.greengrass.SecretManager": {"Owner:secrets:1": {
        "operations": ["aws.greengrass#GetSecretValue"], "resources": ["*"]}}}
    result = core.deploy(
        recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
        merge={"Owner": "1.0.0", "Thief": "1.0.0", "aws.greengrass.SecretManager": "2.1.8"},
        configuration_update={
            "Owner": {"MERGE": {"accessControl": policy}},
            "aws.greengrass.SecretManager": {"MERGE": {"secrets": {
                "db-password": {"secretString": "v1-secret-0451"}}}}})
    assert result["status"] == "SUCCEEDED", result
    assert invoke(core, "Owner")["payload"] == {"mine": "v1-secret-0451"}
    answer = invoke(core, "Thief", {"token": _environ_of(core, "Owner")[
        b"AWS_CONTAINER_AUTHORIZATION_TOKEN"].decode()})
    assert answer["functionError"] is None, answer
    assert "stolen" not in answer["payload"], answer["payload"]
    assert "403" in answer["payload"]["refused"] or "another function" in \
        answer["payload"]["refused"], answer["payload"]
    core_log = core.layout.core_log.read_text(errors="replace")
    assert re.search(r"token of Owner refused: presented by component Thief", core_log), \
        core_log[-3000:]
