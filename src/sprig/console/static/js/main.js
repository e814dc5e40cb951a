// The console's shell: sign-in state, the live channel, and the page router (#/page/arg).

import { onSignedOut, post, startSession } from "./api.js";
import * as live from "./live.js";
import { errorBox, replace } from "./ui.js";
import * as device from "./pages/device.js";
import * as components from "./pages/components.js";
import * as component from "./pages/component.js";
import * as functions from "./pages/functions.js";
import * as deployments from "./pages/deployments.js";
import * as messaging from "./pages/messaging.js";

const PAGES = { device, components, component, functions, deployments, messaging };
const main = document.getElementById("page");
let cleanup = null;
let stopped = false;

function route() {
  if (stopped) return;
  const parts = (location.hash.replace(/^#\/?/, "") || "device").split("/");
  let name = parts[0];
  const arg = parts.slice(1).map(decodeURIComponent).join("/");
  if (name === "components" && arg) name = "component";
  const page = PAGES[name] ?? device;
  for (const a of document.querySelectorAll("nav.tabs a")) {
    const active = a.dataset.page === (name === "component" ? "components" : name);
    a.classList.toggle("active", active);
    if (active) a.parentElement.scrollLeft = Math.max(0, a.offsetLeft - 40);
  }
  window.scrollTo(0, 0);
  if (cleanup) cleanup();
  cleanup = null;
  replace(main);
  main.dataset.page = name;
  try {
    cleanup = page.render(main, arg) ?? null;
  } catch (e) {
    main.append(errorBox(e));
  }
}

function showSignedOut(reason) {
  if (stopped) return;
  stopped = true;
  live.close();
  if (cleanup) cleanup();
  const banner = document.querySelector("[data-testid=banner]");
  banner.hidden = false;
  banner.textContent = `Signed out: ${reason || "the session ended"}. Run \`sprig console login\` on the device for a new link.`;
  document.querySelector("[data-testid=live-status]").dataset.state = "off";
  document.querySelector("[data-testid=live-status]").textContent = "signed out";
}

async function boot() {
  onSignedOut(showSignedOut);
  let session;
  try {
    session = await startSession();
  } catch (e) {
    main.append(errorBox(e));
    return;
  }
  document.querySelector("[data-testid=thing-name]").textContent = session.thingName;
  document.title = `${session.thingName} · Sprig console`;
  document.querySelector("[data-testid=sign-out]").addEventListener("click", async () => {
    try { await post("/api/logout"); } catch { /* signed out anyway */ }
    showSignedOut("you signed out");
  });
  live.connect(document.querySelector("[data-testid=live-status]"));
  window.addEventListener("hashchange", route);
  route();
}

boot();
