// The page's copy of the server's live state, fed by WebSocket frames and by
// API answers. Plain data and pure helpers: no DOM, so node tests it.

export const ACTIVE = new Set(["queued", "downloading"]);
export const FINISHED = new Set(["completed", "failed", "cancelled"]);

// How far along a download's life a status is; a late API answer must not
// move a download backwards past what a frame already said.
const STAGE = { queued: 0, downloading: 1, completed: 2, failed: 2, cancelled: 2 };

export class Store {
  constructor() {
    this.downloads = new Map();
    this.activity = [];
    this.settings = null;
    // presets is {presets:[Preset…], error} as GET /api/presets answers,
    // null until the snapshot brings it.
    this.presets = null;
    // mode is {mode: "writer"|"read_only", node, writer}, null until known.
    this.mode = null;
    this.ready = false;
    this.listeners = new Set();
  }

  // subscribe(fn): fn(type, data, previous) for every change; returns unsubscribe.
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(type, data, previous) {
    for (const fn of this.listeners) {
      fn(type, data, previous);
    }
  }

  // apply takes one WebSocket frame.
  apply(frame) {
    if (!frame || typeof frame !== "object") {
      return;
    }
    const d = frame.data;
    switch (frame.type) {
      case "snapshot":
        this.applySnapshot(d);
        break;
      case "download":
        this.applyDownload(d);
        break;
      case "activity":
        this.applyActivity(d);
        break;
      case "activity_cleared":
        this.activity = [];
        this.emit("activity_cleared", d);
        break;
      case "settings":
        this.applySettings(d);
        break;
      case "presets":
        this.applyPresets(d);
        break;
      case "mode":
        this.mode = d || null;
        this.emit("mode", d);
        break;
      default:
        // New frame types are for newer clients.
        break;
    }
  }

  // applySnapshot replaces everything: after a reconnect the server's state
  // is the truth.
  applySnapshot(s) {
    this.downloads = new Map();
    for (const d of (s && s.downloads) || []) {
      this.downloads.set(d.id, d);
    }
    this.activity = mergeActivity([], (s && s.activity) || []);
    this.settings = (s && s.settings) || null;
    this.presets = presetList(s && s.presets);
    this.mode = (s && s.mode) || null;
    this.ready = true;
    this.emit("snapshot", s);
  }

  applyDownload(d) {
    if (!d || d.id === undefined) {
      return;
    }
    const prev = this.downloads.get(d.id);
    if (prev && (STAGE[d.status] ?? 0) < (STAGE[prev.status] ?? 0)) {
      return;
    }
    this.downloads.set(d.id, d);
    this.emit("download", d, prev);
  }

  applyActivity(a) {
    if (!a || this.activity.some((x) => x.id === a.id)) {
      return;
    }
    this.activity = mergeActivity(this.activity, [a]);
    this.emit("activity", a);
  }

  applySettings(s) {
    const prev = this.settings;
    this.settings = s;
    this.emit("settings", s, prev);
  }

  // applyPresets takes the presets and their install state as the server
  // sends them whenever presets.yaml or any preset's state changes.
  applyPresets(p) {
    this.presets = presetList(p);
    this.emit("presets", this.presets);
  }

  // queue is what the Downloads card shows.
  queue() {
    return visibleDownloads([...this.downloads.values()]);
  }

  // activeByPreset maps a preset id to the status of its queued or running download.
  activeByPreset() {
    const m = new Map();
    for (const d of this.downloads.values()) {
      if (ACTIVE.has(d.status)) {
        m.set(d.preset_id, d.status);
      }
    }
    return m;
  }
}

// presetList normalises a presets frame (or the snapshot's presets).
export function presetList(p) {
  if (!p || typeof p !== "object") {
    return null;
  }
  return { presets: Array.isArray(p.presets) ? p.presets : [], error: p.error || null };
}

// mergeActivity adds items to list, dropping duplicate ids, newest first.
export function mergeActivity(list, items) {
  const byId = new Map();
  for (const a of list) {
    byId.set(a.id, a);
  }
  for (const a of items) {
    if (a && a.id !== undefined && !byId.has(a.id)) {
      byId.set(a.id, a);
    }
  }
  return [...byId.values()].sort((a, b) => b.id - a.id);
}

// visibleDownloads keeps the latest download of each preset (a retry
// replaces the failed attempt), running and queued first in queue order,
// then finished ones, newest first.
export function visibleDownloads(list) {
  const latest = new Map();
  for (const d of list) {
    const cur = latest.get(d.preset_id);
    if (!cur || d.id > cur.id) {
      latest.set(d.preset_id, d);
    }
  }
  const rank = (d) => (d.status === "downloading" ? 0 : d.status === "queued" ? 1 : 2);
  return [...latest.values()].sort((a, b) => {
    const r = rank(a) - rank(b);
    if (r !== 0) {
      return r;
    }
    return rank(a) < 2 ? a.id - b.id : b.id - a.id;
  });
}

// presetState is what a preset card shows: a queued or running download
// wins over the state the presets list reported.
export function presetState(preset, active) {
  return active.get(preset.id) || preset.status;
}

// modelPage finds the HuggingFace page in an hf_access_denied message.
export function modelPage(message) {
  const m = /https?:\/\/[^\s]+/.exec(String(message || ""));
  return m ? m[0].replace(/[.,;:)]+$/, "") : "";
}

// backoff is the wait before reconnect attempt n (0-based): 1, 2, 4 … 30 s.
export function backoff(attempt) {
  return Math.min(30, 2 ** Math.max(0, attempt)) * 1000;
}

// safeNext accepts only a same-site path to go to after login.
export function safeNext(raw) {
  const s = String(raw || "");
  if (!s.startsWith("/") || s.startsWith("//") || s.startsWith("/\\") || /[\u0000-\u001f\\]/.test(s)) {
    return "/";
  }
  if (s === "/login" || s.startsWith("/login?") || s.startsWith("/login/")) {
    return "/";
  }
  return s;
}
