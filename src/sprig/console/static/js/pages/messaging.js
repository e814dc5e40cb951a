// Messaging: subscribe to a local pub/sub or broker (IoT Core) topic filter and watch messages
// arrive on the live channel; publish to either. Subscriptions belong to this page's live
// stream: they end when the page closes, and are made again after a reconnect.

import { post } from "../api.js";
import * as live from "../live.js";
import { card, clock, errorBox, field, h, replace } from "../ui.js";

const KEEP = 200;

export function render(root) {
  const filter = h("input", { type: "text", testid: "sub-filter", value: "#", spellcheck: "false" });
  const subSource = h("select", { testid: "sub-source" },
    h("option", { value: "local", text: "Local pub/sub" }), h("option", { value: "broker", text: "IoT Core (broker)" }));
  const subscribeBtn = h("button", { type: "submit", text: "Subscribe", testid: "subscribe" });
  const subs = h("ul", { class: "chips", testid: "subscriptions" });
  const topic = h("input", { type: "text", testid: "pub-topic", placeholder: "demo/greet/kitchen", spellcheck: "false" });
  const payload = h("textarea", { rows: 4, testid: "pub-payload", spellcheck: "false" });
  payload.value = '{"name": "console"}';
  const pubTarget = h("select", { testid: "pub-target" },
    h("option", { value: "local", text: "Local pub/sub" }), h("option", { value: "broker", text: "IoT Core (broker)" }));
  const qos = h("select", { testid: "pub-qos" }, h("option", { value: "0", text: "QoS 0" }), h("option", { value: "1", text: "QoS 1" }));
  const publishBtn = h("button", { type: "submit", text: "Publish", testid: "publish" });
  const message = h("div");
  const pubResult = h("p", { class: "muted", testid: "pub-result" });
  const messages = h("ol", { class: "messages", testid: "messages" });
  const count = h("span", { class: "muted", testid: "message-count", text: "0 messages" });

  const subForm = h("form", { class: "row wrap" }, field("Topic filter", filter), field("From", subSource), subscribeBtn);
  const pubForm = h("form", { class: "stack" }, field("Topic", topic), field("Payload", payload),
    h("div", { class: "row" }, field("To", pubTarget), field("QoS (broker)", qos), h("span", { class: "spacer" }), publishBtn), pubResult);
  root.append(h("h1", { text: "Messaging" }), message,
    h("div", { class: "grid" }, card("Subscribe", subForm, subs), card("Publish", pubForm)),
    card("Messages", h("div", { class: "row" }, count, h("span", { class: "spacer" }),
      h("button", { type: "button", class: "link", text: "Clear", onclick: () => { replace(messages); total = 0; count.textContent = "0 messages"; } })),
      messages));

  const wanted = new Map();     // subscription id -> {filter, broker}
  let total = 0;

  const chip = (id, f, broker) => h("li", { "data-id": id, testid: `subscription-${f}` },
    `${broker ? "IoT Core" : "local"}: ${f} `,
    h("button", { type: "button", class: "link", text: "×", "aria-label": `unsubscribe ${f}`,
                  onclick: async () => {
                    wanted.delete(id);
                    subs.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
                    try { await post("/api/messaging/unsubscribe", { stream: live.stream(), subscription: id }); } catch { /* gone */ }
                  } }));

  const subscribe = async (f, broker) => {
    const r = await post("/api/messaging/subscribe", { stream: live.stream(), filter: f, broker });
    wanted.set(r.subscription, { filter: f, broker });
    subs.append(chip(r.subscription, f, broker));
  };

  subForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(message);
    if (!live.stream()) { message.append(errorBox("the live channel is not connected yet")); return; }
    try { await subscribe(filter.value.trim(), subSource.value === "broker"); }
    catch (e) { message.append(errorBox(e)); }
  });

  pubForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(message);
    try {
      const r = await post("/api/messaging/publish", { topic: topic.value.trim(), payload: payload.value,
        broker: pubTarget.value === "broker", qos: Number(qos.value) });
      pubResult.textContent = r.outcome ? `Sent to the broker: ${r.outcome}` : `Delivered to ${r.subscribers} subscriber(s)`;
    } catch (e) {
      message.append(errorBox(e));
    }
  });

  const offs = [
    live.on("message", (m) => {
      if (!wanted.has(m.subscription)) return;
      total += 1;
      count.textContent = `${total} message${total === 1 ? "" : "s"}`;
      let body = m.payload ?? `(binary, base64) ${m.payloadBase64}`;
      if (m.payload != null) { try { body = JSON.stringify(JSON.parse(m.payload), null, 2); } catch { /* text */ } }
      messages.prepend(h("li", { testid: "message" },
        h("div", { class: "row" }, h("b", { class: "mono", text: m.topic }), h("span", { class: "spacer" }),
          h("span", { class: "muted", text: `${m.broker ? "IoT Core" : "local"} · from ${m.source} · ${clock(m.at)}` })),
        h("pre", { class: "json", text: body })));
      while (messages.children.length > KEEP) messages.lastChild.remove();
    }),
    live.on("stream", async () => {
      // a new stream after a reconnect: its subscriptions are new too
      const again = [...wanted.values()];
      wanted.clear();
      replace(subs);
      for (const w of again) { try { await subscribe(w.filter, w.broker); } catch (e) { message.append(errorBox(e)); } }
    }),
  ];
  return () => {
    offs.forEach((off) => off());
    for (const id of wanted.keys()) {
      post("/api/messaging/unsubscribe", { stream: live.stream(), subscription: id }).catch(() => {});
    }
  };
}
