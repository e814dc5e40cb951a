// Functions: per function its lifecycle, container mode, memory limit, workers now and its
// invocation figures (Invocations, Errors, Throttles, p50/p99 Duration) with a small live chart;
// the selected one has an invoke form (result, REPORT line, log tail) and its live log.

import { enc, get, post } from "../api.js";
import * as live from "../live.js";
import { card, errorBox, field, h, kv, latencyChart, mb, ms, replace, statePill } from "../ui.js";
import { logTail } from "./component.js";

function workers(w) {
  const parts = Object.entries(w).filter(([, n]) => n).map(([s, n]) => `${n} ${s.toLowerCase()}`);
  return parts.join(", ") || "none";
}

export function render(root, selected) {
  const list = h("div", { class: "cards", testid: "functions" });
  const detail = h("div");
  root.append(h("h1", { text: "Functions" }), list, detail);
  const cards = new Map();          // name -> {el, data, points}
  let tail = null;

  const fill = (entry) => {
    const f = entry.data;
    replace(entry.body,
      h("div", { class: "row head" },
        h("h2", {}, h("a", { href: `#/functions/${enc(f.name)}`, text: f.name })),
        statePill(f.state, `fn-state-${f.name}`)),
      kv([
        ["Lifecycle", f.lifecycle],
        ["Container", f.containerMode],
        ["Memory limit", mb(f.memoryKb)],
        ["Runtime", f.runtime],
        ["Workers now", workers(f.workers), `fn-workers-${f.name}`],
      ]),
      h("div", { class: "figures" },
        figure("Invocations", f.invocations, `fn-invocations-${f.name}`),
        figure("Errors", f.errors, `fn-errors-${f.name}`),
        figure("Throttles", f.throttles, `fn-throttles-${f.name}`),
        figure("p50", ms(f.p50Ms), `fn-p50-${f.name}`),
        figure("p99", ms(f.p99Ms), `fn-p99-${f.name}`)),
      latencyChart(entry.points));
  };

  const load = async () => {
    let fns;
    try {
      fns = await get("/api/functions");
    } catch (e) {
      list.append(errorBox(e));
      return;
    }
    replace(list);
    for (const f of fns) {
      const old = cards.get(f.name);
      const points = old ? old.points
        : (f.recent ?? []).map(([ms, error]) => ({ ms, error: error ? "error" : null }));
      const entry = { data: f, points, body: h("div") };
      entry.el = h("section", { class: `card fn${f.name === selected ? " selected" : ""}`,
                                testid: `function-${f.name}` }, entry.body);
      cards.set(f.name, entry);
      fill(entry);
      list.append(entry.el);
    }
    if (!fns.length) list.append(h("p", { class: "muted", text: "No Lambda function is running. Import one with `sprig lambda import … --deploy`." }));
  };

  const invokePanel = (name) => {
    const payload = h("textarea", { rows: 5, testid: "invoke-payload", spellcheck: "false" });
    payload.value = '{\n  "name": "console"\n}';
    const type = h("select", { testid: "invoke-type" },
      ["RequestResponse", "Event", "DryRun"].map((t) => h("option", { value: t, text: t })));
    const button = h("button", { type: "submit", text: "Invoke", testid: "invoke" });
    const result = h("div", { testid: "invoke-result" });
    const form = h("form", { class: "stack" }, field("Payload (JSON)", payload),
      h("div", { class: "row" }, field("Invocation type", type), h("span", { class: "spacer" }), button));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      replace(result, h("p", { class: "muted", text: "invoking…" }));
      try {
        const r = await post(`/api/functions/${enc(name)}/invoke`,
                             { payload: payload.value, invocationType: type.value });
        replace(result,
          kv([["Status", String(r.statusCode), "invoke-status"],
              ["Function error", r.functionError ?? "none", "invoke-error"],
              ["Request id", r.requestId ?? "—"]]),
          r.statusCode === 200 ? h("pre", { class: "json", testid: "invoke-payload-out", text: r.payload }) : null,
          r.report ? h("pre", { class: "report-line", testid: "invoke-report", text: r.report }) : null,
          r.logTail ? h("details", {}, h("summary", { text: "Log tail" }),
                        h("pre", { class: "log short", testid: "invoke-log", text: r.logTail })) : null);
      } catch (e) {
        replace(result, errorBox(e));
      } finally {
        button.disabled = false;
      }
    });
    tail = logTail(name, { testid: "function-log", height: "short" });
    replace(detail, h("div", { class: "grid" },
      card(`Invoke ${name}`, form, result), card(`Log of ${name}`, tail.el)));
  };

  const offs = [
    live.on("invocation", (e) => {
      const entry = cards.get(e.function);
      if (!entry) { load(); return; }
      entry.points.push({ ms: e.durationMs, error: e.error, throttled: e.throttled });
      if (entry.points.length > 60) entry.points.shift();
      Object.assign(entry.data, e);
      fill(entry);
    }),
    live.on("component", (e) => { if (cards.has(e.name) || e.state === "RUNNING") load(); }),
    live.on("resync", load),
  ];
  load();
  if (selected) invokePanel(selected);
  else replace(detail, h("p", { class: "muted", text: "Select a function to invoke it and follow its log." }));
  return () => { offs.forEach((off) => off()); if (tail) tail.stop(); };
}

function figure(label, value, testid) {
  return h("div", { class: "figure" }, h("div", { class: "value", testid, text: String(value ?? "—") }),
           h("div", { class: "label", text: label }));
}
