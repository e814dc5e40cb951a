// The live channel: one EventSource on /api/events. Pages register handlers by event kind;
// after a reconnect (a new "hello") or missed events ("dropped") they reload what they show.

import { get, signedOut } from "./api.js";

const handlers = new Map();       // kind -> Set of functions
let source = null;
let streamId = null;
let connectedOnce = false;

export function on(kind, fn) {
  if (!handlers.has(kind)) handlers.set(kind, new Set());
  handlers.get(kind).add(fn);
  return () => handlers.get(kind).delete(fn);
}

function emit(kind, data) {
  for (const fn of handlers.get(kind) ?? []) {
    try { fn(data); } catch (e) { console.error(kind, e); }
  }
}

export function stream() { return streamId; }

const KINDS = ["component", "configuration", "deployment", "log", "invocation", "message",
               "device", "dropped"];

export function connect(statusEl) {
  source = new EventSource("/api/events");
  const setStatus = (state, text) => {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
  };
  source.addEventListener("hello", (e) => {
    streamId = JSON.parse(e.data).stream;
    setStatus("live", "live");
    emit("stream", streamId);
    if (connectedOnce) emit("resync", {});
    connectedOnce = true;
  });
  for (const kind of KINDS) {
    source.addEventListener(kind, (e) => {
      const data = JSON.parse(e.data);
      emit(kind, data);
      if (kind === "dropped") emit("resync", data);
    });
  }
  source.addEventListener("bye", (e) => {
    source.close();
    setStatus("off", "signed out");
    signedOut(JSON.parse(e.data).reason);
  });
  source.onerror = () => {
    streamId = null;
    if (source.readyState === EventSource.CLOSED) {
      // refused (no session, or the core went away): the API says which
      setStatus("off", "offline");
      get("/api/session").then(() => { setTimeout(() => connect(statusEl), 2000); },
                               () => {});
      return;
    }
    setStatus("connecting", "reconnecting");
  };
}

export function close() { if (source) source.close(); }
