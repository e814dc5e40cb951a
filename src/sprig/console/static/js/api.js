// The console's JSON API: reads are GET, every change a POST with the session's CSRF token.
// A 401 means the session ended: the page says so once and stops.

let csrf = "";
const signedOutHandlers = [];

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

export function onSignedOut(fn) { signedOutHandlers.push(fn); }

export function signedOut(reason) {
  for (const fn of signedOutHandlers) fn(reason);
}

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrf;
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(path, init);
  let doc = null;
  try { doc = await response.json(); } catch { doc = null; }
  if (!response.ok) {
    const err = doc && doc.error ? doc.error : { type: "Error", message: response.statusText };
    if (response.status === 401) signedOut(err.message);
    throw new ApiError(response.status, err.type, err.message);
  }
  return doc;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

export async function startSession() {
  const session = await get("/api/session");
  csrf = session.csrfToken;
  return session;
}

export const enc = encodeURIComponent;
