// A tiny JSON-lines front for Playwright (playwright-core from npm, in .compat/node), so pytest
// can drive Debian's Chromium step by step while it changes the core in between.
// In:  {"id": 1, "op": "goto", "args": {...}}   Out: {"id": 1, "ok": true, "result": ...}
// Never downloads a browser: executablePath is /usr/bin/chromium (or $SPRIG_CHROMIUM).

import { createRequire } from "node:module";
import { join } from "node:path";
import readline from "node:readline";

const compat = process.env.SPRIG_COMPAT_NODE;
const require = createRequire(join(compat, "package.json"));
const { chromium } = require("playwright-core");

// Playwright starts Chromium with a fresh --user-data-dir of its own (a new temporary profile
// per launch, removed on close), and refuses one passed in args: isolated contexts need it.
const browser = await chromium.launch({
  executablePath: process.env.SPRIG_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const contexts = new Map();
const pages = new Map();
let next = 1;

async function newContext({ viewport, isMobile, deviceScaleFactor } = {}) {
  const ctx = await browser.newContext({
    viewport: viewport ?? { width: 1280, height: 860 }, isMobile: !!isMobile,
    hasTouch: !!isMobile, deviceScaleFactor: deviceScaleFactor ?? 1,
  });
  const id = `c${next++}`;
  contexts.set(id, ctx);
  return id;
}

const locate = (a) => {
  let loc = pages.get(a.page).locator(a.selector);
  if (a.text != null) loc = loc.filter({ hasText: a.text });
  return a.nth != null ? loc.nth(a.nth) : loc.first();
};

const ops = {
  newContext,
  async newPage({ context }) {
    const page = await contexts.get(context).newPage();
    const id = `p${next++}`;
    page.on("pageerror", (e) => process.stderr.write(`pageerror ${id}: ${e.message}\n`));
    page.on("console", (m) => { if (m.type() === "error") process.stderr.write(`console ${id}: ${m.text()}\n`); });
    pages.set(id, page);
    return id;
  },
  async goto({ page, url }) {
    const r = await pages.get(page).goto(url, { waitUntil: "load" });
    return { status: r ? r.status() : null, url: pages.get(page).url() };
  },
  async click(a) { await locate(a).click({ timeout: a.timeout ?? 10000 }); return true; },
  async fill(a) { await locate(a).fill(a.value, { timeout: a.timeout ?? 10000 }); return true; },
  async select(a) { await locate(a).selectOption(a.value, { timeout: a.timeout ?? 10000 }); return true; },
  async waitFor(a) {
    await locate(a).waitFor({ state: a.state ?? "visible", timeout: a.timeout ?? 15000 });
    return true;
  },
  async text(a) { return await locate(a).innerText({ timeout: a.timeout ?? 10000 }); },
  async count(a) { return await pages.get(a.page).locator(a.selector).count(); },
  async attr(a) { return await locate(a).getAttribute(a.name, { timeout: a.timeout ?? 10000 }); },
  async evaluate({ page, expression }) { return await pages.get(page).evaluate(expression); },
  async waitForFunction({ page, expression, timeout }) {
    await pages.get(page).waitForFunction(expression, null, { timeout: timeout ?? 15000 });
    return true;
  },
  async screenshot({ page, path, fullPage }) {
    await pages.get(page).screenshot({ path, fullPage: !!fullPage, animations: "disabled" });
    return path;
  },
  async cookies({ context }) { return await contexts.get(context).cookies(); },
  async closeContext({ context }) { await contexts.get(context).close(); contexts.delete(context); return true; },
};

const rl = readline.createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ready: true, version: browser.version() }) + "\n");
for await (const line of rl) {
  if (!line.trim()) continue;
  const { id, op, args } = JSON.parse(line);
  try {
    const result = await ops[op](args ?? {});
    process.stdout.write(JSON.stringify({ id, ok: true, result }) + "\n");
  } catch (e) {
    process.stdout.write(JSON.stringify({ id, ok: false, error: String(e && e.message || e) }) + "\n");
  }
}
await browser.close();
