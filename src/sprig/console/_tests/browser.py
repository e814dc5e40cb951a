"""Drive Debian's Chromium with Playwright from pytest: ``driver.mjs`` (playwright-core from npm,
installed in ``.compat/node`` by ``scripts/setup-compat``) answers one JSON line per step, so a
test can change the core between two steps and wait, in the browser, for the page to show it.
Waits are Playwright's own (the page's DOM, not a clock)."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]
COMPAT_NODE = REPO / ".compat" / "node"
CHROMIUM = os.environ.get("SPRIG_CHROMIUM", "/usr/bin/chromium")
DRIVER = Path(__file__).with_name("driver.mjs")


def missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: run scripts/setup --test (apt-get install chromium)"
    if not (COMPAT_NODE / "node_modules" / "playwright-core").is_dir():
        return "no playwright-core in .compat/node: run scripts/setup-compat"
    if shutil.which("node") is None:
        return "no Node.js: run scripts/setup"
    return None


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless Chromium (fresh profile), driven step by step."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        env = dict(os.environ, SPRIG_COMPAT_NODE=str(COMPAT_NODE), SPRIG_CHROMIUM=CHROMIUM,
                   PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"sprig-driver-{os.getpid()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(["node", str(DRIVER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, env=env,
                                     text=True, bufsize=1)
        self._ids = 0
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        hello = self._read()
        if not hello.get("ready"):
            raise BrowserError(f"the driver did not start: {hello}")
        self.version = hello.get("version")

    def _read(self, timeout_s: float | None = None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        if not self._sel.select(timeout_s or self.timeout_s):
            raise BrowserError(f"the browser driver did not answer in {self.timeout_s} s; "
                               f"its log: {self.log_path.read_text()[-2000:]}")
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError(f"the browser driver exited: {self.log_path.read_text()[-2000:]}")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def call(self, op: str, **args: Any) -> Any:
        self._ids += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._ids, "op": op, "args": args}) + "\n")
        answer = self._read(max(self.timeout_s, args.get("timeout", 0) / 1000 + 15))
        if not answer.get("ok"):
            raise BrowserError(f"{op} {args}: {answer.get('error')}")
        return answer.get("result")

    def context(self, **options: Any) -> Context:
        return Context(self, self.call("newContext", **options))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Context:
    """A browser context: its own cookies (a session, or none)."""

    def __init__(self, browser: Browser, cid: str) -> None:
        self.browser = browser
        self.id = cid

    def page(self) -> Page:
        return Page(self.browser, self.browser.call("newPage", context=self.id))

    def cookies(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.browser.call("cookies", context=self.id)
        return result

    def close(self) -> None:
        self.browser.call("closeContext", context=self.id)


class Page:
    def __init__(self, browser: Browser, pid: str) -> None:
        self.b = browser
        self.id = pid

    def goto(self, url: str) -> dict[str, Any]:
        result: dict[str, Any] = self.b.call("goto", page=self.id, url=url)
        return result

    def click(self, selector: str, text: str | None = None) -> None:
        self.b.call("click", page=self.id, selector=selector, text=text)

    def fill(self, selector: str, value: str) -> None:
        self.b.call("fill", page=self.id, selector=selector, value=value)

    def select(self, selector: str, value: str) -> None:
        self.b.call("select", page=self.id, selector=selector, value=value)

    def wait_for(self, selector: str, text: str | None = None, *, state: str = "visible",
                 timeout_s: float = 20) -> None:
        self.b.call("waitFor", page=self.id, selector=selector, text=text, state=state,
                    timeout=int(timeout_s * 1000))

    def text(self, selector: str) -> str:
        result: str = self.b.call("text", page=self.id, selector=selector)
        return result

    def count(self, selector: str) -> int:
        result: int = self.b.call("count", page=self.id, selector=selector)
        return result

    def evaluate(self, expression: str) -> Any:
        return self.b.call("evaluate", page=self.id, expression=expression)

    def wait_until(self, expression: str, timeout_s: float = 20) -> None:
        self.b.call("waitForFunction", page=self.id, expression=expression,
                    timeout=int(timeout_s * 1000))

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.b.call("screenshot", page=self.id, path=str(path), fullPage=full_page)
        return path


def tid(name: str) -> str:
    """The selector of an element by its ``data-testid``."""
    return f'[data-testid="{name}"]'
