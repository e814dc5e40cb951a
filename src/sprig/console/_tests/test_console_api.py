"""The console's API on a real core, as a page uses it (session from the real CLI's link):
the live channel carries the core's own events, values are redacted, errors name the field;
over TLS with the certificate's fingerprint; and a disabled console says so."""

from __future__ import annotations

import datetime
import http.client
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sprig._tests.reliability.support import invoke, public_dir
from sprig.console._tests.conftest import Device
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e


class Client:
    """A page's view of the API: its cookie, its CSRF token."""

    def __init__(self, url: str, link: str, context: ssl.SSLContext | None = None) -> None:
        split = urlsplit(url)
        self.host, self.port, self.context = split.hostname or "", split.port or 0, context
        status, headers, _ = self.raw("GET", link[len(url):])
        assert status == 200, status
        self.set_cookie = headers["Set-Cookie"]
        self.cookie = self.set_cookie.split(";")[0]
        self.csrf = self.get("/api/session")["csrfToken"]

    def connection(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=30,
                                               context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def raw(self, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection()
        try:
            conn.request(method, path, None if body is None else json.dumps(body).encode(),
                         headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def get(self, path: str, status: int = 200) -> Any:
        code, _, data = self.raw("GET", path, headers={"Cookie": self.cookie})
        assert code == status, (path, code, data[:300])
        return json.loads(data)

    def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        code, _, data = self.raw("POST", path, body or {}, {
            "Cookie": self.cookie, "X-CSRF-Token": self.csrf,
            "Content-Type": "application/json"})
        assert code == status, (path, code, data[:300])
        return json.loads(data)

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The live channel, frame by frame (blocks on the core's own events)."""
        conn = self.connection()
        conn.request("GET", "/api/events", headers={"Cookie": self.cookie})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
        kind = ""
        try:
            while True:
                line = r.readline().decode()
                if not line:
                    return
                if line.startswith("event: "):
                    kind = line[7:].strip()
                elif line.startswith("data: "):
                    yield kind, json.loads(line[6:])
        finally:
            conn.close()


class Events:
    """The frames read so far and the stream: a wait finds an event already read, too (the
    core may tell a log line before the state change that caused it)."""

    def __init__(self, stream: Iterator[tuple[str, dict[str, Any]]]) -> None:
        self.stream = stream
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def until(self, kind: str, timeout_s: float = 60, **match: Any) -> dict[str, Any]:
        import time

        def matches(k: str, data: dict[str, Any]) -> bool:
            return k == kind and all(data.get(key) == v for key, v in match.items())

        for k, data in self.seen:
            if matches(k, data):
                return data
        deadline = time.monotonic() + timeout_s
        for k, data in self.stream:          # frames arrive at least every 5 s (device)
            self.seen.append((k, data))
            if matches(k, data):
                return data
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no {kind} event {match} in {timeout_s} s; seen: "
                             f"{[(k, d.get('name') or d.get('status')) for k, d in self.seen]}")


@pytest.fixture(scope="module")
def client(device: Device) -> Client:
    return Client(device.url, device.login_link())


def test_the_live_channel_carries_the_core_s_own_events(client: Client, device: Device) -> None:
    events = Events(client.events())
    hello = events.until("hello")
    assert hello["stream"]
    assert events.until("device")["rssKb"] > 0
    client.post("/api/components/com.example.Dashboard/restart")
    events.until("component", name="com.example.Dashboard", state="STOPPING")
    running = events.until("component", name="com.example.Dashboard", state="RUNNING")
    assert running["version"] == "1.0.0"
    events.until("log", component="com.example.Dashboard", text="Dashboard showing Edge")
    assert invoke(device.core, "Hello", {"name": "events"})["functionError"] is None
    inv = events.until("invocation", function="Hello")
    assert inv["durationMs"] > 0 and inv["error"] is None and inv["invocations"] >= 1
    assert inv["lifecycle"] == "pinned" and inv["memoryKb"] == 65536
    sub = client.post("/api/messaging/subscribe", {"stream": hello["stream"],
                                                   "filter": "api/+/t"})
    client.post("/api/messaging/publish", {"topic": "api/x/t", "payload": "not json \u00e9"})
    message = events.until("message", subscription=sub["subscription"])
    assert message["topic"] == "api/x/t" and message["payload"] == "not json \u00e9"
    dep = client.post("/api/deployments", {"configurationUpdate": {
        "com.example.Dashboard": {"MERGE": {"title": "Events"}}}})
    assert dep["status"] == "QUEUED"
    events.until("deployment", deploymentId=dep["deploymentId"], status="IN_PROGRESS")
    events.until("configuration", name="com.example.Dashboard")
    done = events.until("deployment", deploymentId=dep["deploymentId"], status="SUCCEEDED")
    assert done["document"]["configurationUpdate"]


def test_pages_read_what_the_core_knows(client: Client, device: Device) -> None:
    info = client.get("/api/device")
    assert info["thingName"] == device.core.call("status")["thingName"]
    assert info["platform"]["os"] == "linux" and "GreengrassContainer" in info["check"]
    assert info["process"]["rssKb"] > 0 and "console" in info["endpoints"]
    names = {c["name"]: c for c in client.get("/api/components")}
    assert names["Hello"]["state"] == "RUNNING"
    graph = client.get("/api/graph")
    assert {"from": "com.example.Dashboard", "to": "Hello", "type": "HARD"} in graph["edges"]
    fns = client.get("/api/functions")
    assert [f["name"] for f in fns] == ["Hello"]
    assert fns[0]["containerMode"] == "GreengrassContainer" and fns[0]["lifecycle"] == "pinned"
    result = client.post("/api/functions/Hello/invoke", {"payload": '{"name": "api"}'})
    assert json.loads(result["payload"]) == {"greeting": "Hello, api!"}
    assert result["report"].startswith("REPORT RequestId: " + result["requestId"])
    assert "hello handler got" in result["logTail"]
    event = client.post("/api/functions/Hello/invoke", {"payload": "{}",
                                                        "invocationType": "Event"})
    assert event["statusCode"] == 202
    logs = client.get("/api/components/Hello/logs?lines=5&q=HANDLER%20GOT")
    assert logs["lines"] and all("handler got" in line for line in logs["lines"])
    history = client.get("/api/deployments")
    assert history[-1]["status"] == "SUCCEEDED"


def test_secrets_and_function_environment_values_are_redacted(client: Client,
                                                               device: Device) -> None:
    result = device.core.deploy(configuration_update={
        "Hello": {"MERGE": {"lambdaExecutionParameters": {
            "EnvironmentVariables": {"API_KEY": "s3cret-env"}}}},
        "com.example.Dashboard": {"MERGE": {"db": {"secretString": "s3cret-db"}}}})
    assert result["status"] == "SUCCEEDED", result
    hello = client.get("/api/components/Hello")
    env = hello["configuration"]["lambdaExecutionParameters"]["EnvironmentVariables"]
    assert env == {"API_KEY": "** redacted **"}
    dash = client.get("/api/components/com.example.Dashboard")
    assert dash["configuration"]["db"] == {"secretString": "** redacted **"}
    everything = json.dumps(client.get("/api/deployments")) + json.dumps(hello) + \
        json.dumps(dash)
    assert "s3cret" not in everything


def test_bad_input_is_refused_by_name_and_changes_nothing(client: Client) -> None:
    before = client.get("/api/deployments")
    err = client.post("/api/deployments", {"merge": {"Hello": "9.9.9"}}, status=400)["error"]
    assert "merge.Hello" in err["message"] and "9.9.9" in err["message"]
    err = client.post("/api/deployments", {"merj": {}}, status=400)["error"]
    assert "merj" in err["message"] and "allowed" in err["message"]
    err = client.post("/api/functions/Nope/invoke", {"payload": "{}"}, status=400)["error"]
    assert "Nope" in err["message"]
    err = client.post("/api/functions/Hello/invoke", {"payload": "{}",
                                                      "invocationType": "Sync"},
                      status=400)["error"]
    assert "invocationType" in err["message"] and "RequestResponse" in err["message"]
    err = client.post("/api/messaging/subscribe", {"stream": "nope", "filter": "a/#"},
                      status=400)["error"]
    assert "stream" in err["message"]
    err = client.post("/api/messaging/publish", {"topic": "a/+/b", "payload": "x"},
                      status=400)["error"]
    assert "a/+/b" in err["message"]
    err = client.post("/api/messaging/publish", {"topic": "a", "payload": "x",
                                                 "broker": True}, status=400)["error"]
    assert "mqtt" in err["message"]
    err = client.get("/api/components/..%2F..%2Fstate.db/logs", status=400)["error"]
    assert "no such component" in err["message"]
    assert client.get("/api/deployments?limit=0", status=400)["error"]["message"].startswith(
        "limit")
    assert client.get("/api/deployments") == before


def test_a_failed_deployment_leaves_nothing_to_roll_back_to(client: Client,
                                                             device: Device) -> None:
    with public_dir("sprig-console-broken-") as work:
        from sprig._tests.reliability.support import generic_component

        generic_component(work / "recipes", "com.example.Broken", "1.0.0", marker="x",
                          broken=True)
        result = device.core.deploy(recipe_dir=work / "recipes",
                                    merge={"com.example.Broken": "1.0.0"})
    assert result["status"] == "FAILED"
    err = client.post("/api/deployments/rollback", status=400)["error"]
    assert "FAILED" in err["message"] and result["deploymentId"] in err["message"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sprig-test-device")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                __import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "device.pem.crt", directory / "private.pem.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_with_the_device_certificate_and_its_fingerprint() -> None:
    import hashlib

    with public_dir("sprig-console-tls-") as work:
        root = work / "root"
        root.mkdir()
        cert, _ = _self_signed(root)
        config = {"console": {"tls": {"certPath": "device.pem.crt",
                                      "keyPath": "private.pem.key"}}}
        with CoreProcess(root, config=config) as core:
            url = core.endpoints()["console"]
            assert url.startswith("https://127.0.0.1:")
            out = subprocess.run([sys.executable, "-m", "sprig", "console", "login", "--root",
                                  str(root)], capture_output=True, text=True, timeout=60,
                                 check=True).stdout
            link = out.splitlines()[0]
            der = ssl.PEM_cert_to_DER_cert(cert.read_text())
            digest = hashlib.sha256(der).hexdigest().upper()
            assert ":".join(digest[i:i + 2] for i in range(0, 64, 2)) in out
            context = ssl.create_default_context(cafile=str(cert))
            client = Client(url, link, context)
            assert "; Secure" in client.set_cookie
            assert client.get("/api/device")["thingName"]
            with pytest.raises(ssl.SSLError):        # nobody gets in without trusting it
                Client(url, link, ssl.create_default_context())


def test_a_disabled_console_is_not_served_and_login_says_why() -> None:
    with public_dir("sprig-console-off-") as work, \
            CoreProcess(work / "root", config={"console": {"enabled": False}}) as core:
        assert "console" not in core.endpoints()
        out = subprocess.run([sys.executable, "-m", "sprig", "console", "login", "--root",
                              str(core.root)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 1
        assert "console.enabled" in out.stderr and "disabled" in out.stderr
        assert core.call("status")["components"] >= 0
