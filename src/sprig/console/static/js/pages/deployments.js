// Deployments: the history with status and reason (live), a MERGE/RESET form that creates a
// deployment, and a one-click roll back to where the device was before the last one.

import { get, post } from "../api.js";
import * as live from "../live.js";
import { card, errorBox, field, h, replace, statePill, time } from "../ui.js";

function what(doc) {
  const parts = Object.entries(doc.merge ?? {}).map(([n, v]) => `${n}=${v}`);
  if ((doc.remove ?? []).length) parts.push(`remove ${doc.remove.join(", ")}`);
  const cfg = Object.keys(doc.configurationUpdate ?? {});
  if (cfg.length) parts.push(`configuration of ${cfg.join(", ")}`);
  return parts.join("; ") || "no change";
}

function parseMerge(text) {
  const merge = {};
  for (const raw of text.split(/[\n,]+/)) {
    const line = raw.trim();
    if (!line) continue;
    const [name, version, extra] = line.split("=");
    if (!name || !version || extra !== undefined) {
      throw new Error(`Components to add or update: "${line}" is not NAME=VERSION (e.g. com.example.Hello=1.0.0)`);
    }
    merge[name.trim()] = version.trim();
  }
  return merge;
}

export function render(root) {
  const body = h("tbody", { testid: "deployments" });
  const message = h("div", { testid: "deploy-message" });
  const merge = h("textarea", { rows: 3, testid: "deploy-merge", placeholder: "com.example.Hello=1.0.0", spellcheck: "false" });
  const remove = h("input", { type: "text", testid: "deploy-remove", placeholder: "names, comma separated" });
  const config = h("textarea", { rows: 6, testid: "deploy-config", spellcheck: "false",
                                 placeholder: '{"com.example.Hello": {"MERGE": {"message": "hi"}, "RESET": ["/old"]}}' });
  const policy = h("select", { testid: "deploy-policy" },
    ["ROLLBACK", "DO_NOTHING"].map((p) => h("option", { value: p, text: p })));
  const recipeDir = h("input", { type: "text", testid: "deploy-recipe-dir", placeholder: "/path/on/the/device (optional)" });
  const artifactDir = h("input", { type: "text", testid: "deploy-artifact-dir", placeholder: "/path/on/the/device (optional)" });
  const submit = h("button", { type: "submit", text: "Create deployment", testid: "deploy" });
  const rollback = h("button", { type: "button", class: "danger", text: "Roll back to the previous deployment", testid: "rollback" });
  const form = h("form", { class: "stack" },
    field("Components to add or update (NAME=VERSION, one a line)", merge),
    field("Components to remove", remove),
    field("Configuration update (JSON: MERGE and RESET per component)", config),
    h("div", { class: "grid tight" }, field("Recipe folder on the device", recipeDir),
      field("Artifact folder on the device", artifactDir)),
    h("div", { class: "row" }, field("On failure", policy), h("span", { class: "spacer" }), submit));

  root.append(
    h("h1", { text: "Deployments" }),
    card("History", h("div", { class: "table-wrap" }, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Created", "Status", "What", "Reason", "Id"].map((t) => h("th", { text: t })))),
      body)), h("div", { class: "row" }, h("span", { class: "spacer" }), rollback)),
    card("New deployment", message, form));

  const rows = new Map();
  const row = (d) => h("tr", { "data-id": d.deploymentId, "data-status": d.status, testid: `deployment-${d.deploymentId}` },
    h("td", { text: time(d.createdAt) }),
    h("td", {}, statePill(d.status)),
    h("td", { text: what(d.document) }),
    h("td", { class: "reason", text: d.reason || "" }),
    h("td", { class: "muted mono", text: d.deploymentId.slice(0, 8) }));

  const put = (d) => {
    const tr = row(d);
    const old = rows.get(d.deploymentId);
    if (old) old.replaceWith(tr);
    else body.prepend(tr);
    rows.set(d.deploymentId, tr);
    const empty = body.querySelector(".empty");
    if (empty) empty.remove();
  };

  const load = async () => {
    try {
      const list = await get("/api/deployments");
      rows.clear();
      replace(body);
      for (const d of list.reverse()) put(d);
      if (!list.length) body.append(h("tr", { class: "empty" }, h("td", { colspan: 5, class: "muted", text: "No deployment yet." })));
    } catch (e) {
      message.append(errorBox(e));
    }
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(message);
    let doc;
    try {
      doc = { merge: parseMerge(merge.value), failureHandlingPolicy: policy.value,
              remove: remove.value.split(",").map((x) => x.trim()).filter(Boolean) };
      if (config.value.trim()) {
        try { doc.configurationUpdate = JSON.parse(config.value); }
        catch (e) { throw new Error(`Configuration update: not valid JSON (${e.message})`); }
      }
      if (recipeDir.value.trim()) doc.recipeDir = recipeDir.value.trim();
      if (artifactDir.value.trim()) doc.artifactDir = artifactDir.value.trim();
    } catch (e) {
      message.append(errorBox(e));
      return;
    }
    submit.disabled = true;
    try {
      const d = await post("/api/deployments", doc);
      put(d);
      message.append(h("p", { class: "ok", testid: "deploy-queued", text: `Deployment ${d.deploymentId} ${d.status}` }));
    } catch (e) {
      message.append(errorBox(e));
    } finally {
      submit.disabled = false;
    }
  });

  let armed = false;
  rollback.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      rollback.textContent = "Click again to roll back";
      rollback.dataset.armed = "1";
      return;
    }
    armed = false;
    delete rollback.dataset.armed;
    rollback.textContent = "Roll back to the previous deployment";
    replace(message);
    try {
      const d = await post("/api/deployments/rollback");
      put(d);
      message.append(h("p", { class: "ok", testid: "deploy-queued", text: `Roll back: deployment ${d.deploymentId} ${d.status}` }));
    } catch (e) {
      message.append(errorBox(e));
    }
  });

  const offs = [live.on("deployment", put), live.on("resync", load)];
  load();
  return () => offs.forEach((off) => off());
}
