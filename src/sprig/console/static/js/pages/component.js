// One component: state (live), last error, restart/stop, its dependencies as a graph, its
// effective configuration (secrets redacted by the core) and recipe, and a live log tail with
// search.

import { enc, get, post } from "../api.js";
import * as live from "../live.js";
import { card, clear, dependencyGraph, errorBox, h, kv, pretty, replace, statePill } from "../ui.js";

const KEEP = 1000;     // log lines kept on the page

export function logLine(e) {
  const t = new Date(e.time * 1000).toISOString().replace(/(\.\d{3})\d*Z$/, "$1Z");
  return String(e.text).replace(/\r?\n$/, "").split("\n")
    .map((part) => `${t} [${e.level}] (${e.stream}) ${e.component}: ${part}`);
}

// A log tail for one component: the last lines of its file, then lines as they are written.
export function logTail(name, { testid = "log", height = "tall" } = {}) {
  const pre = h("pre", { class: `log ${height}`, testid, "aria-live": "polite" });
  const search = h("input", { type: "search", placeholder: "Search the log…", testid: `${testid}-search`,
                               "aria-label": "search the log" });
  const note = h("span", { class: "muted", testid: `${testid}-note` });
  let query = "";
  let lines = [];

  const show = () => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    clear(pre);
    for (const line of lines) {
      const div = h("div", { class: "line" });
      if (query) {
        const i = line.toLowerCase().indexOf(query.toLowerCase());
        if (i >= 0) {
          div.append(line.slice(0, i), h("mark", { text: line.slice(i, i + query.length) }),
                     line.slice(i + query.length));
        } else div.textContent = line;
      } else div.textContent = line;
      pre.append(div);
    }
    if (atBottom || !query) pre.scrollTop = pre.scrollHeight;
  };

  const load = async () => {
    try {
      const q = query ? `&q=${enc(query)}` : "";
      const doc = await get(`/api/components/${enc(name)}/logs?lines=300${q}`);
      lines = doc.lines;
      note.textContent = query ? `${lines.length} matching lines in the last ${doc.searched}`
                               : `last ${lines.length} lines, live`;
      show();
    } catch (e) {
      note.textContent = e.message;
    }
  };

  search.addEventListener("change", () => { query = search.value.trim(); load(); });
  const off = live.on("log", (e) => {
    if (e.component !== name) return;
    const fresh = logLine(e).filter((l) => !query || l.toLowerCase().includes(query.toLowerCase()));
    if (!fresh.length) return;
    lines.push(...fresh);
    if (lines.length > KEEP) lines = lines.slice(-KEEP);
    show();
  });
  const offResync = live.on("resync", load);
  load();
  return {
    el: h("div", { class: "log-tail" }, h("div", { class: "row" }, search, note), pre),
    stop() { off(); offResync(); },
  };
}

export function render(root, name) {
  const head = h("div", { class: "row head" });
  const facts = h("div");
  const graph = h("div", { class: "graph-wrap", testid: "dependency-graph" });
  const config = h("pre", { class: "json", testid: "configuration" });
  const recipe = h("pre", { class: "json", testid: "recipe" });
  const message = h("div");
  const tail = logTail(name);
  root.append(
    h("p", {}, h("a", { href: "#/components", text: "← Components" })),
    head, message,
    card("Details", facts),
    card("Dependencies (arrows point to what a component needs; dashed: SOFT)", graph),
    card("Log", tail.el),
    h("div", { class: "grid" }, card("Effective configuration", config), card("Recipe", recipe)),
  );

  const act = (action) => async () => {
    replace(message);
    try {
      await post(`/api/components/${enc(name)}/${action}`);
    } catch (e) {
      message.append(errorBox(e));
    }
  };

  const setState = (state, lastError) => {
    replace(head,
      h("h1", { text: name }),
      statePill(state, "component-state"),
      h("span", { class: "spacer" }),
      h("button", { type: "button", text: "Restart", testid: "restart", onclick: act("restart") }),
      h("button", { type: "button", class: "danger", text: "Stop", testid: "stop", onclick: act("stop") }));
    if (lastError !== undefined) {
      const el = facts.querySelector("[data-testid=last-error]");
      if (el) el.textContent = lastError || "—";
    }
  };

  const loadGraph = async () => {
    try {
      const g = await get("/api/graph");
      // this component, what it needs and what needs it (both transitively)
      const keep = new Set([name]);
      for (const [from, to] of [["from", "to"], ["to", "from"]]) {
        const seen = new Set([name]);
        const todo = [name];
        while (todo.length) {
          const n = todo.pop();
          for (const e of g.edges) {
            if (e[from] === n && !seen.has(e[to])) { seen.add(e[to]); keep.add(e[to]); todo.push(e[to]); }
          }
        }
      }
      const sub = { nodes: g.nodes.filter((n) => keep.has(n.name)),
                    edges: g.edges.filter((e) => keep.has(e.from) && keep.has(e.to)) };
      replace(graph, sub.edges.length ? dependencyGraph(sub, name, (n) => { location.hash = `#/components/${enc(n)}`; })
                                      : h("p", { class: "muted", text: "No dependencies, and nothing depends on it." }));
    } catch (e) {
      replace(graph, errorBox(e));
    }
  };

  const load = async () => {
    let d;
    try {
      d = await get(`/api/components/${enc(name)}`);
    } catch (e) {
      replace(head, h("h1", { text: name }));
      message.append(errorBox(e));
      return;
    }
    setState(d.state);
    const fn = d.function;
    replace(facts, kv([
      ["Version", d.version, "component-version"],
      ["Type", d.componentType],
      ["Last error", d.lastError || "—", "last-error"],
      ["Note", d.statusDetail || "—"],
      ["Run as", d.runWith?.posixUser ?? "default (runWithDefault)"],
      ["Resource limits", d.systemResourceLimits ? pretty(d.systemResourceLimits) : "none"],
      fn ? ["Function", `${fn.arn} (${fn.runtime}, handler ${fn.handler})`] : null,
    ].filter(Boolean)));
    config.textContent = pretty(d.configuration);
    recipe.textContent = pretty(d.recipe);
    loadGraph();
  };

  const offs = [
    live.on("component", (e) => {
      if (e.name === name) setState(e.state, e.lastError);
      else loadGraph();
    }),
    live.on("configuration", (e) => { if (e.name === name) load(); }),
    live.on("deployment", (d) => { if (d.status === "SUCCEEDED" || d.status === "FAILED") load(); }),
    live.on("resync", load),
  ];
  load();
  return () => { offs.forEach((off) => off()); tail.stop(); };
}
