"""Attacks on the web console of a real core, performed for real: reading without a session,
a forged Origin or Host with a stolen-in-transit-free but valid session cookie, a change
without the CSRF token, an expired, spent or guessed login link, and a function inside its
sandbox (which shares the host's network, as Greengrass containers do) going for the console's
port. Each must be refused, and nothing may change."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from sprig._tests.reliability.support import function_component, invoke
from sprig.testing import CoreProcess

READS = ("/", "/static/js/main.js", "/api/session", "/api/device", "/api/components",
         "/api/components/Victim", "/api/components/Victim/logs", "/api/functions",
         "/api/deployments", "/api/graph", "/api/events")


def _login(core: CoreProcess, *extra: str) -> str:
    out = subprocess.run([sys.executable, "-m", "sprig", "console", "login", "--root",
                          str(core.root), *extra], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return out.splitlines()[0]


def _request(url: str, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        # an event stream that was (wrongly) opened would never end: read its head only
        data = answer.read(4096) if answer.status == 200 and path == "/api/events" \
            else answer.read()
        return answer.status, dict(answer.getheaders()), data
    finally:
        conn.close()


def _session(url: str, link: str) -> tuple[str, str]:
    """Open ``link`` as a browser would: the cookie it sets, and the session's CSRF token."""
    status, headers, _ = _request(url, "GET", link[len(url):])
    assert status == 200, status
    cookie = headers["Set-Cookie"].split(";")[0]
    status, _, body = _request(url, "GET", "/api/session", {"Cookie": cookie})
    assert status == 200
    return cookie, json.loads(body)["csrfToken"]


def _deploy_victim(core: CoreProcess, public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Victim", "def handler(e, c):\n    return {'ok': True}\n",
                       pinned=True)
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Victim": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result


def test_nothing_is_readable_without_a_session(core: CoreProcess, public_tmp: Path) -> None:
    _deploy_victim(core, public_tmp)
    url = core.endpoints()["console"]
    for path in READS:
        for cookie in ({}, {"Cookie": f"sprig-console-{urlsplit(url).port}=guessed"}):
            status, _, body = _request(url, "GET", path, cookie)
            assert status == 401, (path, cookie, status, body[:200])
            assert b"Victim" not in body and b"csrf" not in body.lower()


def test_forged_origin_host_and_missing_csrf_are_refused_and_change_nothing(
        core: CoreProcess, public_tmp: Path) -> None:
    _deploy_victim(core, public_tmp)
    url = core.endpoints()["console"]
    cookie, csrf = _session(url, _login(core))
    port = urlsplit(url).port
    same = {"Cookie": cookie}
    assert _request(url, "GET", "/api/components", same)[0] == 200      # the session works
    forged = [
        {"Origin": "http://evil.example"},
        {"Origin": f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Host": f"evil.example:{port}"},                                # DNS rebinding
    ]
    for extra in forged:
        for path in ("/api/components", "/api/events"):
            status, _, body = _request(url, "GET", path, {**same, **extra})
            assert status == 403, (extra, path, status, body[:200])
        status, _, body = _request(url, "POST", "/api/components/Victim/stop",
                                   {**same, **extra, "X-CSRF-Token": csrf,
                                    "Content-Type": "application/json"}, b"{}")
        assert status == 403, (extra, status, body)
    # a change without the token, with a wrong one, or as a form: refused
    for headers in ({"Content-Type": "application/json"},
                    {"Content-Type": "application/json", "X-CSRF-Token": "guess"},
                    {"Content-Type": "application/x-www-form-urlencoded",
                     "X-CSRF-Token": csrf},
                    {"Content-Type": "text/plain", "X-CSRF-Token": csrf}):
        for path in ("/api/components/Victim/stop", "/api/deployments/rollback",
                     "/api/deployments", "/api/messaging/publish",
                     "/api/functions/Victim/invoke", "/api/logout"):
            status, _, body = _request(url, "POST", path, {**same, **headers}, b"{}")
            assert status == 403, (headers, path, status, body)
    assert core.states()["Victim"] == "RUNNING"
    assert len(core.call("deployment.list", {"limit": 50})) == 1
    # with everything right, the same change goes through (the checks are what refused it)
    status, _, body = _request(url, "POST", "/api/components/Victim/stop",
                               {**same, "X-CSRF-Token": csrf,
                                "Content-Type": "application/json"}, b"{}")
    assert status == 200, body
    assert core.states()["Victim"] == "FINISHED"


def test_expired_spent_and_guessed_links_open_no_session(core: CoreProcess) -> None:
    url = core.endpoints()["console"]
    link = _login(core, "--expires-in", "1")
    expires = time.time() + 1
    # The clock is what is under test here: wait for the stated expiry itself to pass.
    time.sleep(max(0.0, expires - time.time()) + 0.2)
    status, headers, body = _request(url, "GET", link[len(url):])
    assert status == 403 and "Set-Cookie" not in headers
    assert b"expired" in body
    good = _login(core)
    assert _request(url, "GET", good[len(url):])[0] == 200
    status, headers, body = _request(url, "GET", good[len(url):])
    assert status == 403 and "Set-Cookie" not in headers and b"used already" in body
    for token in ("", "guess", good.split("token=")[1][:-1] + "A"):
        status, headers, _ = _request(url, "GET", f"/login?token={token}")
        assert status == 403 and "Set-Cookie" not in headers, token
    # a link is asked for over the owner-only management socket: the bound is 8 hours
    refused = subprocess.run([sys.executable, "-m", "sprig", "console", "login", "--root",
                              str(core.root), "--expires-in", "28801"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1 and "expiresIn" in refused.stderr


PROBE = """
import http.client, json, os
def _get(port, method, path, headers):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
        r = c.getresponse()
        return r.status, r.read(300).decode(errors="replace")
    except OSError as e:
        return None, type(e).__name__
def handler(event, context):
    port = event["port"]
    cookie = {"Cookie": "sprig-console-%d=%s" % (port, "A" * 43)}
    out = {}
    for path in event["paths"]:
        out["GET " + path] = _get(port, "GET", path, cookie)
    for path in ("/api/components/Victim/stop", "/api/deployments/rollback"):
        out["POST " + path] = _get(port, "POST", path, dict(cookie, **{
            "Content-Type": "application/json", "X-CSRF-Token": "guess"}))
    out["GET /login"] = _get(port, "GET", "/login?token=" + "B" * 43, {})
    try:
        out["endpoints"] = open(event["endpoints"]).read()[:100]
    except OSError as e:
        out["endpoints"] = "refused: " + type(e).__name__
    return out
"""


def test_a_function_in_its_sandbox_gets_nothing_from_the_console(
        core: CoreProcess, public_tmp: Path) -> None:
    _deploy_victim(core, public_tmp)
    out = public_tmp / "probe"
    function_component(out, "Prober", PROBE, pinned=True, isolation="GreengrassContainer")
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Prober": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    url = core.endpoints()["console"]
    _session(url, _login(core))             # a session exists: the prober still may not use it
    answer = invoke(core, "Prober", {"port": urlsplit(url).port, "paths": list(READS),
                                     "endpoints": str(core.layout.endpoints_file)})
    assert answer["functionError"] is None, answer
    found = answer["payload"]
    assert found.pop("endpoints").startswith("refused"), found
    for what, (status, body) in found.items():
        assert status in (401, 403), (what, status, body)
        assert "Victim" not in body, (what, body)
    assert core.states()["Victim"] == "RUNNING"
    assert len(core.call("deployment.list", {"limit": 50})) == 2
