// Device: who this device is, what `sprig core check` reports, and the core's own memory and
// CPU (from the live channel's `device` frames: no request loop here).

import { get } from "../api.js";
import * as live from "../live.js";
import { card, duration, errorBox, h, kv, mb, replace, time } from "../ui.js";

export function render(root) {
  const usage = h("div", { testid: "device-usage" });
  const identity = h("div", { testid: "device-identity" });
  const report = h("pre", { class: "report", testid: "core-check" }, "…");
  const recheck = h("button", { type: "button", text: "Check again" });
  const checked = h("p", { class: "muted" });
  root.append(
    h("h1", { text: "Device" }),
    h("div", { class: "grid" }, card("Identity", identity), card("Core process", usage)),
    card("What `sprig core check` reports", h("div", { class: "row" }, checked, recheck), report),
  );
  let info = null;
  let last = null;
  let loadedAt = 0;

  const showUsage = (u) => {
    let cpu = "—";
    if (last && u.at > last.at) {
      const pct = (u.cpuSeconds - last.cpuSeconds) / (u.at - last.at) * 100;
      cpu = `${pct.toFixed(1)} % of one core`;
    }
    last = u;
    const uptime = info ? info.uptimeSeconds + (u.at - loadedAt) : null;
    replace(usage, kv([
      ["Memory (resident)", mb(u.rssKb), "core-rss"],
      ["Memory (peak)", mb(u.peakRssKb)],
      ["CPU now", cpu, "core-cpu"],
      ["CPU time so far", `${u.cpuSeconds.toFixed(1)} s`],
      ["Uptime", uptime == null ? "—" : duration(uptime), "uptime"],
    ]));
  };

  const load = async (recheckNow) => {
    try {
      info = await get(`/api/device${recheckNow ? "?recheck=1" : ""}`);
    } catch (e) {
      root.append(errorBox(e));
      return;
    }
    loadedAt = info.process.at;
    const p = info.platform;
    replace(identity, kv([
      ["Thing name", info.thingName, "device-thing"],
      ["Platform", `${p.os} ${p.architecture}${p["architecture.detail"] ? ` (${p["architecture.detail"]})` : ""}`, "device-platform"],
      ["Sprig version", info.version, "device-version"],
      ["AWS Region", info.awsRegion],
      ["Root directory", info.root],
      ["Core PID", String(info.pid)],
      ["Deploying now", info.currentDeployment ?? "nothing"],
      ["Endpoints", h("ul", { class: "plain" }, Object.entries(info.endpoints).sort()
        .map(([k, v]) => h("li", {}, h("b", { text: k }), " ", v)))],
    ]));
    report.textContent = info.check;
    checked.textContent = `Checked ${time(info.checkedAt)}`;
    showUsage(info.process);
  };

  recheck.addEventListener("click", () => load(true));
  load(false);
  const offs = [live.on("device", showUsage), live.on("resync", () => load(false))];
  return () => offs.forEach((off) => off());
}
