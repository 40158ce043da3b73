// A thin fetch wrapper: JSON in, JSON out, and every failure turned into an
// ApiError carrying the server's {"error":{code,message}} so pages can show it
// where it happened.

import { sentence } from "./format.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

// loginURL is where an expired session goes, coming back here afterwards.
function loginURL() {
  const next = location.pathname + location.search;
  return `/login?next=${encodeURIComponent(next)}`;
}

export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return send(path, init);
}

// upload posts a file's bytes as they are, with its content type.
export async function upload(path, blob, type) {
  return send(path, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": type },
    credentials: "same-origin",
    cache: "no-store",
    body: blob,
  });
}

async function send(path, init) {
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "Could not reach the dashboard. Check the connection and try again.");
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && data.error ? data.error : {};
    if (res.status === 401 && e.code === "unauthorized") {
      // The session ended (or the password changed): log in again.
      location.assign(loginURL());
    }
    const message = e.message ? sentence(e.message) : `The dashboard answered HTTP ${res.status}.`;
    throw new ApiError(res.status, e.code || `http_${res.status}`, message);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);
