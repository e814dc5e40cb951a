"""Authentication: the invoke API refuses unsigned, wrongly signed and late (replayed) requests;
the management socket is owner-only; secrets never reach a log."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.exceptions
import pytest
from botocore.config import Config

from sprig._tests.reliability.support import function_component
from sprig.local_api.credentials import load_credentials
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

STORED_SECRET = "hunter2-sprig-reliability-secret"
HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


def deploy_echo(core: CoreProcess, base: Path) -> None:
    out = base / "out"
    function_component(out, "Echo", HANDLER, pinned=True)
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Echo": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result


def client(core: CoreProcess, secret: str | None = None) -> Any:
    creds = load_credentials(core.layout.credentials)
    return boto3.client(
        "lambda", endpoint_url=core.endpoints()["lambda"], region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=secret or creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}))


def shift_client_clock(monkeypatch: pytest.MonkeyPatch, minutes: int) -> None:
    """Move botocore's signing clock (both its own signer and the CRT one it prefers when
    ``awscrt`` is installed): a request signed then and sent now is a late replay."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)

    def clock(remove_tzinfo: bool = True) -> dt.datetime:
        return when.replace(tzinfo=None) if remove_tzinfo else when

    monkeypatch.setattr(botocore.auth, "get_current_datetime", clock)
    try:
        import botocore.crt.auth as crt_auth
    except ImportError:
        return
    monkeypatch.setattr(crt_auth, "get_current_datetime", clock)


def status_of(call: Any) -> tuple[int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call()
    return (err.value.response["ResponseMetadata"]["HTTPStatusCode"],
            err.value.response["Error"]["Code"])


def test_invoke_api_refuses_unsigned_wrong_and_late_requests(
        core: CoreProcess, public_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy_echo(core, public_tmp)
    good = client(core)
    assert json.load(good.invoke(FunctionName="Echo", Payload=b"{}")["Payload"]) == {"ok": True}
    url = core.endpoints()["lambda"] + "/2015-03-31/functions/Echo/invocations"
    # Unsigned, and with an Authorization header that is not SigV4 at all.
    for headers in ({}, {"Authorization": "Basic c3ByaWc6c3ByaWc="},
                    {"Authorization": "AWS4-HMAC-SHA256 Credential=x"}):
        req = urllib.request.Request(url, data=b"{}", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as unsigned:
            urllib.request.urlopen(req, timeout=10)
        assert unsigned.value.code == 403, headers
        unsigned.value.close()
    # Wrong secret; unknown access key.
    assert status_of(lambda: client(core, secret="x" * 40).invoke(
        FunctionName="Echo", Payload=b"{}"))[0] == 403
    other = boto3.client("lambda", endpoint_url=core.endpoints()["lambda"],
                         region_name="us-east-1", aws_access_key_id="AKIAOTHERKEY0000000",
                         aws_secret_access_key="y" * 40,
                         config=Config(retries={"total_max_attempts": 1}))
    assert status_of(lambda: other.invoke(FunctionName="Echo", Payload=b"{}"))[0] == 403
    # A request signed ten minutes ago (a captured request replayed late), and one signed ten
    # minutes in the future: the client's clock, not the server's, is moved.
    for shift in (-10, +10):
        shift_client_clock(monkeypatch, shift)
        code, error = status_of(lambda: client(core).invoke(FunctionName="Echo", Payload=b"{}"))
        assert code == 403, (shift, error)
    shift_client_clock(monkeypatch, -4)          # within AWS's 5 minutes: accepted
    assert client(core).invoke(FunctionName="Echo", Payload=b"{}")["StatusCode"] == 200
    monkeypatch.undo()
    # The function was not run by any refused request, and the API still answers.
    assert json.load(good.invoke(FunctionName="Echo", Payload=b"{}")["Payload"]) == {"ok": True}


def test_management_socket_is_owner_only(core: CoreProcess) -> None:
    sock = core.layout.management_socket
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    assert mode == 0o600, oct(mode)
    assert os.stat(sock).st_uid == os.getuid()
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(sock)!r})\n"
        "except PermissionError:\n"
        "    print('refused'); sys.exit(0)\n"
        "s.sendall(b'POST /rpc HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 19\\r\\n\\r\\n"
        "{\"method\":\"status\"}')\n"
        "print('CONNECTED', s.recv(200)); sys.exit(1)\n"
    )
    done = subprocess.run(["runuser", "-u", "sprig_user", "--", "/usr/bin/python3", "-c", probe],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "refused" in done.stdout, (done.stdout, done.stderr)
    # The CLI as that user gets the clear error, not a traceback.
    cli = subprocess.run(["runuser", "-u", "sprig_user", "--", sys.executable, "-m", "sprig",
                          "status", "--root", str(core.root)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert cli.returncode != 0
    assert "Traceback" not in cli.stderr, cli.stderr
    # The credentials file is private too.
    assert stat.S_IMODE(os.stat(core.layout.credentials).st_mode) == 0o600


def test_secrets_never_reach_the_logs(core: CoreProcess, public_tmp: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    deploy_echo(core, public_tmp)
    secret = load_credentials(core.layout.credentials).secret_access_key
    # A secret for functions, given by deployment (Sprig's offline SecretManager shape).
    result = core.deploy(merge={"aws.greengrass.SecretManager": "2.1.8"},
                         configuration_update={"aws.greengrass.SecretManager": {"MERGE": {
                             "secrets": {"db-password": {
                                 "secretString": STORED_SECRET,
                                 "arn": "arn:aws:secretsmanager:us-east-1:123456789012:"
                                        "secret:db-password-AbCdEf"}}}}})
    assert result["status"] == "SUCCEEDED", result
    good = client(core)
    good.invoke(FunctionName="Echo", Payload=b"{}", LogType="Tail")
    status_of(lambda: client(core, secret="z" * 40).invoke(FunctionName="Echo", Payload=b"{}"))
    status_of(lambda: good.invoke(FunctionName="Nope", Payload=b"{}"))
    shift_client_clock(monkeypatch, -10)
    status_of(lambda: client(core).invoke(FunctionName="Echo", Payload=b"{}"))
    monkeypatch.undo()
    # A restart reads the credentials again.
    core.stop()
    core.start()
    client(core).invoke(FunctionName="Echo", Payload=b"{}")
    core.stop()
    secrets = [secret.encode(), b"z" * 40, STORED_SECRET.encode()]
    key_file = core.layout.secrets_key
    assert key_file.exists(), "the secret store's key was created"
    key = key_file.read_bytes()
    secrets += [key, key.hex().encode(), base64.b64encode(key)]
    texts = {p.name: p.read_bytes() for p in core.layout.logs.glob("*.log*")}
    texts["core.stdout"] = (core.root / "core.stdout").read_bytes()
    assert texts.get("sprig.log")
    for name, text in texts.items():
        for s in secrets:
            assert s and s not in text, f"a secret appears in {name}"
    core.start()      # the fixture stops it
