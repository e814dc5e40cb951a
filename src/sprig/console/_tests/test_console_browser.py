"""The console in a real browser (Debian's Chromium, driven by Playwright) against a real core:
log in with the link ``sprig console login`` prints, see the deployed function, invoke it, watch
a component go BROKEN live, follow a log line as it is written, subscribe and see a published
message, create and roll back a deployment from the page; refused without a session, and a
page of another local origin cannot use a signed-in browser's session. At the end, a
screenshot of each page (desktop and phone-sized) goes to ``docs/console/``."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from sprig._tests.reliability.support import invoke
from sprig.console._tests.browser import REPO, Browser, Context, Page, missing, tid
from sprig.console._tests.conftest import Device

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(missing() is not None, reason=str(missing()))]

SHOTS = REPO / "docs" / "console"
PHONE = {"viewport": {"width": 390, "height": 844}, "isMobile": True, "deviceScaleFactor": 2}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def signed_in(browser: Browser, device: Device) -> Iterator[tuple[Context, Page]]:
    """A browser context signed in through the login link, on the console's first page."""
    ctx = browser.context()
    page = ctx.page()
    landed = page.goto(device.login_link())
    assert landed["status"] == 200, landed
    page.wait_for(tid("live-status"), "live")
    yield ctx, page
    ctx.close()


def test_the_login_link_signs_in_with_an_httponly_strict_cookie(
        signed_in: tuple[Context, Page], device: Device) -> None:
    ctx, page = signed_in
    assert page.evaluate("location.pathname + location.search") == "/"   # the token is gone
    page.wait_for(tid("device-thing"))
    assert page.text(tid("thing-name")) == device.core.call("status")["thingName"]
    assert "GreengrassContainer" in page.text(tid("core-check"))
    assert page.text(tid("device-version"))
    cookies = ctx.cookies()
    assert len(cookies) == 1, cookies
    cookie = cookies[0]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict", cookie
    assert page.evaluate("document.cookie") == ""          # not readable by the page's scripts
    # another browser (no cookie) sees nothing
    other = page.b.context()
    assert other.page().goto(device.url + "/")["status"] == 401
    other.close()


def test_a_used_link_is_refused_in_the_browser(browser: Browser, device: Device) -> None:
    link = device.login_link()
    first = browser.context()
    assert first.page().goto(link)["status"] == 200
    second = browser.context()
    page = second.page()
    assert page.goto(link)["status"] == 403
    assert "used already" in page.text("body")
    assert second.cookies() == []
    first.close()
    second.close()


def test_nothing_is_readable_without_a_session(browser: Browser, device: Device) -> None:
    ctx = browser.context()
    page = ctx.page()
    answer = page.goto(device.url + "/")
    assert answer["status"] == 401
    assert "sprig console login" in page.text("body")
    for path in ("/static/js/main.js", "/api/components", "/api/device", "/api/events"):
        assert page.goto(device.url + path)["status"] == 401, path
    ctx.close()


def test_the_deployed_function_is_shown_and_invoked(signed_in: tuple[Context, Page],
                                                    device: Device) -> None:
    _, page = signed_in
    page.goto(device.url + "/#/functions")
    page.wait_for(tid("function-Hello"))
    card = page.text(tid("function-Hello"))
    assert "pinned" in card and "GreengrassContainer" in card and "64.0 MB" in card, card
    page.click(f'{tid("function-Hello")} a')
    page.wait_for(tid("invoke"))
    page.fill(tid("invoke-payload"), '{"name": "browser"}')
    page.click(tid("invoke"))
    page.wait_for(tid("invoke-payload-out"), "Hello, browser!")
    assert page.text(tid("invoke-status")) == "200"
    assert page.text(tid("invoke-error")) == "none"
    assert page.text(tid("invoke-report")).startswith("REPORT RequestId: ")
    # the invocation reached the page's figures and log over the live channel
    page.wait_for(tid("function-log"), "hello handler got")
    page.wait_until("Number(document.querySelector('[data-testid=fn-invocations-Hello]')"
                    ".textContent) >= 1")
    page.fill(tid("invoke-payload"), '{"fail": true}')
    page.click(tid("invoke"))
    page.wait_for(tid("invoke-error"), "Handled")
    assert "asked to fail" in page.text(tid("invoke-payload-out"))
    page.wait_until("Number(document.querySelector('[data-testid=fn-errors-Hello]')"
                    ".textContent) >= 1")


def test_a_log_line_appears_as_it_is_written(signed_in: tuple[Context, Page],
                                             device: Device) -> None:
    _, page = signed_in
    page.goto(device.url + "/#/components/Hello")
    page.wait_for(tid("log-note"), "live")
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    assert invoke(device.core, "Hello", {"name": marker})["functionError"] is None
    page.wait_for(tid("log"), marker)
    # search: the matching lines of the file, then only matching new ones
    page.fill(tid("log-search"), marker)
    page.evaluate("document.querySelector('[data-testid=log-search]')"
                  ".dispatchEvent(new Event('change'))")
    page.wait_for(tid("log-note"), "matching lines")
    page.wait_for(f"{tid('log')} mark", marker)


def test_a_component_goes_broken_live(signed_in: tuple[Context, Page], device: Device) -> None:
    _, page = signed_in
    device.core.wait_state("com.example.Flaky", "RUNNING")
    page.goto(device.url + "/#/components")
    page.wait_for(tid("state-com.example.Flaky"), "RUNNING")
    device.fail_flag.touch()
    page.wait_for(tid("state-com.example.Flaky"), "BROKEN", timeout_s=60)
    page.click(f'{tid("component-com.example.Flaky")} a')
    page.wait_for(tid("component-state"), "BROKEN")
    page.wait_for(tid("last-error"), "exit")
    page.wait_for(tid("log"), "Flaky saw its fail flag")
    # fixed, then restarted from the page: RUNNING again, live
    device.fail_flag.unlink()
    page.click(tid("restart"))
    page.wait_for(tid("component-state"), "RUNNING", timeout_s=60)


def test_a_subscription_shows_published_messages(signed_in: tuple[Context, Page],
                                                 device: Device) -> None:
    _, page = signed_in
    page.goto(device.url + "/#/messaging")
    page.fill(tid("sub-filter"), "console/test/#")
    page.click(tid("subscribe"))
    page.wait_for(tid("subscription-console/test/#"))
    device.core.call("pubsub.publish", {"topic": "console/test/outside",
                                        "payload": base64.b64encode(b'{"from": "cli"}').decode()})
    page.wait_for(tid("message"), "console/test/outside")
    assert '"from": "cli"' in page.text(tid("message"))
    page.fill(tid("pub-topic"), "console/test/page")
    page.fill(tid("pub-payload"), '{"from": "page"}')
    page.click(tid("publish"))
    page.wait_for(tid("pub-result"), "Delivered to 1 subscriber")
    page.wait_for(tid("message"), "console/test/page")


def test_a_deployment_from_the_page_and_a_roll_back(signed_in: tuple[Context, Page],
                                                    device: Device) -> None:
    _, page = signed_in
    page.goto(device.url + "/#/deployments")
    page.fill(tid("deploy-config"), json.dumps(
        {"com.example.Dashboard": {"MERGE": {"title": "From the console"}}}))
    page.click(tid("deploy"))
    page.wait_for(tid("deploy-queued"))
    first = page.evaluate("document.querySelector('[data-testid=deployments] tr').dataset.id")
    assert final_status(page, first) == "SUCCEEDED"
    config = device.core.call("component.details", {"name": "com.example.Dashboard"})
    assert config["configuration"]["title"] == "From the console"
    page.click(tid("rollback"))
    page.wait_for(f'{tid("rollback")}[data-armed]')
    page.click(tid("rollback"))
    page.wait_for(tid("deploy-queued"), "Roll back")
    second = page.evaluate("document.querySelector('[data-testid=deployments] tr').dataset.id")
    assert second != first
    assert final_status(page, second) == "SUCCEEDED"
    config = device.core.call("component.details", {"name": "com.example.Dashboard"})
    assert config["configuration"]["title"] == "Edge"
    # a bad document is refused with the field named, and nothing is queued
    page.fill(tid("deploy-config"), "")
    page.fill(tid("deploy-merge"), "com.example.Nope=9.9.9")
    page.click(tid("deploy"))
    page.wait_for(tid("error"), "merge.com.example.Nope")


def final_status(page: Page, dep_id: str) -> str:
    """Wait (on the page, fed by the live channel) until the deployment's row is final."""
    row = tid("deployment-" + dep_id)
    page.wait_for(f'{row}[data-status="SUCCEEDED"], {row}[data-status="FAILED"]',
                  timeout_s=90)
    status: str = page.evaluate(f"document.querySelector('{row}').dataset.status")
    if status != "SUCCEEDED":
        status += ": " + page.text(f"{row} .reason")
    return status


def test_another_local_origin_cannot_use_the_session(signed_in: tuple[Context, Page],
                                                     browser: Browser, device: Device) -> None:
    """SameSite=Strict does not stop a page on another loopback port (same site: ports do not
    count), so the console checks Origin and Fetch metadata, and every change needs the CSRF
    token. A page served by another local process tries its worst with the signed-in
    browser; nothing changes, and the live channel refuses a forged Origin."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ctx, _ = signed_in
    target = device.url
    evil = f"""<!doctype html><body><script>
      const results = {{}};
      fetch("{target}/api/components/Hello/stop", {{method: "POST", mode: "no-cors",
             credentials: "include", headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}})
        .then(() => results.post = "sent", e => results.post = "error " + e);
      const es = new EventSource("{target}/api/events", {{withCredentials: true}});
      es.onopen = () => {{ results.events = "open"; }};
      es.onerror = () => {{ results.events = "refused"; es.close(); }};
      const f = document.createElement("form");
      f.method = "POST"; f.action = "{target}/api/components/Hello/stop";
      f.target = "sink"; document.body.append(f);
      const sink = document.createElement("iframe"); sink.name = "sink";
      sink.onload = () => {{ results.form = "done"; }};
      document.body.append(sink); f.submit();
      window.results = results;
    </script></body>"""

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = evil.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = ctx.page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_until("window.results && window.results.events && window.results.post "
                        "&& window.results.form")
        assert page.evaluate("window.results.events") == "refused"
    finally:
        server.shutdown()
    assert device.core.states()["Hello"] == "RUNNING"
    # The live channel itself refuses a forged Origin, even with the session's cookie.
    cookie = ctx.cookies()[0]
    split = urlsplit(device.url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
    conn.request("GET", "/api/events", headers={
        "Cookie": f"{cookie['name']}={cookie['value']}", "Origin": "http://evil.example"})
    answer = conn.getresponse()
    assert answer.status == 403, answer.status
    assert "Origin" in json.loads(answer.read())["error"]["message"]
    conn.close()


def test_screenshots_of_each_page(browser: Browser, device: Device,
                                  signed_in: tuple[Context, Page]) -> None:
    """For the README: each page on a desktop and on a phone-sized screen."""
    invoke(device.core, "Hello", {"name": "screenshot"})
    for viewport, suffix in (({}, ""), (PHONE, "-phone")):
        ctx = browser.context(**viewport)
        page = ctx.page()
        page.goto(device.login_link())
        page.wait_for(tid("live-status"), "live")
        shots = [
            ("device", "#/device", tid("core-rss")),
            ("components", "#/components", tid("state-Hello")),
            ("component", "#/components/com.example.Dashboard", f"{tid('dependency-graph')} svg"),
            ("functions", "#/functions/Hello", tid("function-Hello")),
            ("deployments", "#/deployments", f"{tid('deployments')} tr"),
            ("messaging", "#/messaging", tid("subscribe")),
        ]
        for name, route, ready in shots:
            page.goto(f"{device.url}/{route}")
            page.wait_for(ready)
            if name == "functions":
                page.fill(tid("invoke-payload"), '{"name": "README"}')
                page.click(tid("invoke"))
                page.wait_for(tid("invoke-report"))
            if name == "messaging":
                page.fill(tid("sub-filter"), "demo/#")
                page.click(tid("subscribe"))
                page.wait_for(tid("subscription-demo/#"))
                device.core.call("pubsub.publish", {
                    "topic": "demo/greet/kitchen",
                    "payload": base64.b64encode(b'{"name": "edge"}').decode()})
                page.wait_for(tid("message"))
            path = page.screenshot(SHOTS / f"{name}{suffix}.png", full_page=not suffix)
            assert path.stat().st_size > 10_000, path
        ctx.close()

