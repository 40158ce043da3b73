// The page's copy of the server's live state, fed by WebSocket frames and by
// API answers. Plain data and pure helpers: no DOM, so node tests it.

export const ACTIVE = new Set(["queued", "downloading"]);

// KEEP_FINISHED is how many ended downloads the live list keeps: the
// server's keepFinished.
export const KEEP_FINISHED = 100;
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
    // system is the pod's last measurement (GET /api/system), null until
    // the snapshot or a "system" frame brings one.
    this.system = null;
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
      case "system":
        if (d && typeof d === "object") {
          this.system = d;
          this.emit("system", d);
        }
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
    // A snapshot without a recent measurement keeps the one shown: a fresh
    // "system" frame follows at once.
    if (s && s.system) {
      this.system = s.system;
    }
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
    this.pruneDownloads();
    this.emit("download", d, prev);
  }

  // pruneDownloads keeps, as the server does, every active download and the
  // newest KEEP_FINISHED ended ones: a page left open keeps no more than a
  // fresh snapshot would send, and offers Retry only where the server still
  // can (a workflow's files leave the server with its download).
  pruneDownloads() {
    const ended = [...this.downloads.values()].filter((x) => !ACTIVE.has(x.status)).sort((a, b) => a.id - b.id);
    for (const x of ended.slice(0, Math.max(ended.length - KEEP_FINISHED, 0))) {
      this.downloads.delete(x.id);
    }
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

  // activeByPreset maps a preset id to the status of its queued or running
  // download: "queued" or "downloading", or "verifying" for a verify (queued
  // or running), which leaves the files as they are.
  activeByPreset() {
    const m = new Map();
    for (const d of this.downloads.values()) {
      if (ACTIVE.has(d.status)) {
        m.set(d.preset_id, d.kind === "verify" ? "verifying" : d.status);
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
  return {
    presets: Array.isArray(p.presets) ? p.presets : [],
    error: p.error || null,
    warnings: Array.isArray(p.warnings) ? p.warnings.filter((w) => typeof w === "string") : [],
  };
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

// badgeStatus is the word a download's badge shows: a verify reads
// "Verifying" while it runs and "Verified" when it passed.
export function badgeStatus(d) {
  if (d && d.kind === "verify") {
    if (d.status === "downloading") {
      return "verifying";
    }
    if (d.status === "completed") {
      return "verified";
    }
  }
  return d ? d.status : "";
}

// corruptFiles are the preset's files a verify found corrupt.
export function corruptFiles(preset) {
  return ((preset && preset.files) || []).filter((f) => f.corrupt);
}

// hasFilesInPlace says whether a preset has anything a verify could check
// or an uninstall remove: a file installed or found corrupt.
export function hasFilesInPlace(preset) {
  return ((preset && preset.files) || []).some((f) => f.installed || f.corrupt);
}

// modelPage finds the HuggingFace page in an hf_access_denied message.
export function modelPage(message) {
  const m = /https?:\/\/[^\s]+/.exec(String(message || ""));
  return m ? m[0].replace(/[.,;:)]+$/, "") : "";
}

// tokenServiceFor names the service whose token an error code asks for
// ("huggingface", "civitai"), or null: the token prompt opens for these.
export function tokenServiceFor(code) {
  if (code === "hf_token_required") {
    return "huggingface";
  }
  if (code === "civitai_token_required") {
    return "civitai";
  }
  return null;
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

// missingBytes is what installing a preset still has to fetch: the sizes of
// its files that are not in place.
export function missingBytes(preset) {
  let n = 0;
  for (const f of (preset && preset.files) || []) {
    if (!f.installed && f.size_bytes > 0) {
      n += f.size_bytes;
    }
  }
  return n;
}

// spaceShort says whether a preset does not fit on the volume: {need, free}
// when its missing files are larger than the free space, else null (also
// when the free space is not known).
export function spaceShort(preset, system) {
  const v = system && system.volume;
  if (!v || !(v.total_bytes > 0) || typeof v.free_bytes !== "number") {
    return null;
  }
  const need = missingBytes(preset);
  return need > v.free_bytes ? { need, free: v.free_bytes } : null;
}

// volumeTaken is what the volume bar fills: all but the free space the text
// names. used_bytes counts root's reserved blocks, which an unprivileged
// writer cannot use either, so a bar of used/total would show room the
// sentence (and spaceShort) do not.
export function volumeTaken(v) {
  if (!v || !(v.total_bytes > 0) || typeof v.free_bytes !== "number") {
    return 0;
  }
  return Math.min(v.total_bytes, Math.max(0, v.total_bytes - v.free_bytes));
}

// historyRow is a download frame in the shape of a download_history row.
export function historyRow(d) {
  let duration = null;
  if (d.completed_at && d.started_at) {
    duration = Math.max(0, Math.round((Date.parse(d.completed_at) - Date.parse(d.started_at)) / 1000));
  }
  return {
    id: d.id,
    preset_id: d.preset_id,
    preset_name: d.preset_name || d.preset_id,
    kind: d.kind || "install",
    status: d.status,
    error: d.status === "failed" && d.error ? d.error : null,
    files_completed: d.files_completed,
    files_total: d.files_total,
    bytes_done: d.bytes_done,
    bytes_total: d.bytes_total,
    started_at: d.started_at,
    completed_at: d.completed_at || null,
    duration_seconds: duration,
  };
}

// mergeHistory puts a row into a page of history rows, newest first: an
// existing row is replaced, a row newer than all of them goes on top, and a
// row older than the page's oldest is left for a later page. complete says
// the page reaches the end of the history (no next page).
export function mergeHistory(rows, row, complete) {
  const i = rows.findIndex((r) => r.id === row.id);
  if (i >= 0) {
    const out = rows.slice();
    out[i] = { ...rows[i], ...row, preset_name: row.preset_name || rows[i].preset_name };
    return out;
  }
  const oldest = rows.length ? rows[rows.length - 1].id : Infinity;
  if (row.id < oldest && !complete) {
    return rows;
  }
  return [...rows, row].sort((a, b) => b.id - a.id);
}

// retryable says whether a history row offers Retry: it failed or was
// cancelled and no newer download of the same preset has taken its place.
// A workflow's download can be retried only while the dashboard that ran it
// still knows its files (live holds this run's downloads by id): after a
// restart the server refuses, so the button is not offered.
export function retryable(row, rows, live) {
  if (row.status !== "failed" && row.status !== "cancelled") {
    return false;
  }
  if (String(row.preset_id).startsWith(WORKFLOW_PREFIX) && !(live && live.has(row.id))) {
    return false;
  }
  return !rows.some((r) => r.preset_id === row.preset_id && r.id > row.id);
}

// WORKFLOW_PREFIX starts the preset id of a workflow's download.
export const WORKFLOW_PREFIX = "workflow:";

// notificationFor is the browser notification an event deserves, or null:
// a download that has just ended, or a generation that completed or failed.
// tag makes every tab showing it show one.
export function notificationFor(type, data, prev) {
  if (!data) {
    return null;
  }
  if (type === "download") {
    if (!FINISHED.has(data.status) || (prev && FINISHED.has(prev.status))) {
      return null;
    }
    const name = data.preset_name || data.preset_id;
    const verify = data.kind === "verify";
    const titles = verify
      ? { completed: `Verified ${name}`, failed: `Verify failed: ${name}`, cancelled: `Verify cancelled: ${name}` }
      : { completed: `Downloaded ${name}`, failed: `Download failed: ${name}`, cancelled: `Download cancelled: ${name}` };
    let body = "";
    if (data.status === "completed" && verify) {
      const n = data.files_total - ((data.unverifiable && data.unverifiable.length) || 0);
      body = n === 1 ? "1 file matches its checksum." : `${n} files match their checksums.`;
    } else if (data.status === "completed") {
      body = data.files_total === 1 ? "1 file is in place." : `${data.files_total} files are in place.`;
    } else if (data.status === "failed" && data.error) {
      body = data.error.message || "";
    }
    return { title: titles[data.status], body, tag: `download-${data.id}` };
  }
  if (type === "activity" && data.type === "generation" && (data.status === "completed" || data.status === "failed")) {
    return { title: data.title || (data.status === "completed" ? "Generation completed" : "Generation failed"), body: data.subtitle || "", tag: `activity-${data.id}` };
  }
  return null;
}
