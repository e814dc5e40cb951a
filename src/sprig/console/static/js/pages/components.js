// Components: name, version, state and type of each, updated live as states change; a
// deployment that finishes reloads the list (new versions, added or removed components).

import { enc, get } from "../api.js";
import * as live from "../live.js";
import { card, errorBox, h, replace, statePill } from "../ui.js";

export function render(root) {
  const body = h("tbody", { testid: "components" });
  const summary = h("p", { class: "muted", testid: "components-summary" });
  root.append(
    h("h1", { text: "Components" }),
    card(null, summary, h("div", { class: "table-wrap" }, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Name", "Version", "State", "Type"].map((t) => h("th", { text: t })))),
      body))),
  );
  const rows = new Map();

  const summarize = () => {
    const counts = {};
    for (const r of rows.values()) counts[r.dataset.state] = (counts[r.dataset.state] ?? 0) + 1;
    summary.textContent = `${rows.size} components: ` +
      (Object.entries(counts).sort().map(([s, n]) => `${n} ${s}`).join(", ") || "none");
  };

  const row = (c) => {
    const tr = h("tr", { "data-name": c.name, "data-state": c.state, testid: `component-${c.name}` },
      h("td", {}, h("a", { href: `#/components/${enc(c.name)}`, text: c.name })),
      h("td", { text: c.version ?? "" }),
      h("td", { class: "state-cell" }, statePill(c.state, `state-${c.name}`)),
      h("td", { class: "muted", text: (c.componentType ?? "").replace("aws.greengrass.", "") }));
    if (c.lastError) tr.title = c.lastError;
    return tr;
  };

  const load = async () => {
    try {
      const list = await get("/api/components");
      rows.clear();
      replace(body, list.map((c) => { const tr = row(c); rows.set(c.name, tr); return tr; }));
      if (!list.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted", text: "Nothing deployed yet: create a deployment." })));
      summarize();
    } catch (e) {
      root.append(errorBox(e));
    }
  };

  const offs = [
    live.on("component", (e) => {
      const tr = rows.get(e.name);
      if (!tr) { load(); return; }
      tr.dataset.state = e.state;
      replace(tr.querySelector(".state-cell"), statePill(e.state, `state-${e.name}`));
      if (e.version) tr.children[1].textContent = e.version;
      tr.title = e.lastError ?? "";
      summarize();
    }),
    live.on("deployment", (d) => { if (d.status === "SUCCEEDED" || d.status === "FAILED") load(); }),
    live.on("resync", load),
  ];
  load();
  return () => offs.forEach((off) => off());
}
