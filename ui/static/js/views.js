// Renderers shared by the pages: status badges, activity rows, empty states,
// and the Retry every download row offers.

import { h, icon, timeEl, setMessage, busy } from "./dom.js";
import { post } from "./api.js";
import { tokenServiceFor } from "./state.js";
import { formatRelative, formatDateTime, formatBytes, formatDuration, sentence } from "./format.js";

const TONES = {
  installed: "success",
  completed: "success",
  verified: "success",
  downloading: "info",
  verifying: "info",
  corrupt: "danger",
  started: "info",
  queued: "accent",
  partial: "warning",
  failed: "danger",
  cancelled: "neutral",
  missing: "neutral",
};

const LABELS = {
  installed: "Installed",
  completed: "Completed",
  verified: "Verified",
  downloading: "Downloading",
  verifying: "Verifying",
  corrupt: "Corrupt",
  started: "Started",
  queued: "Queued",
  partial: "Partly installed",
  failed: "Failed",
  cancelled: "Cancelled",
  missing: "Not installed",
};

function statusLabel(status) {
  return LABELS[status] || status;
}

export function statusBadge(status, extraClass = "") {
  return h("span", { class: `badge ${extraClass}`.trim(), "data-tone": TONES[status] || "neutral", "data-status": status }, statusLabel(status));
}

export function updateBadge(el, status) {
  el.dataset.tone = TONES[status] || "neutral";
  el.dataset.status = status;
  el.textContent = statusLabel(status);
}

const TYPE_ICON = { download: "download", generation: "sparkle", error: "alert" };
const TYPE_LABEL = { download: "Download", generation: "Generation", error: "Error" };

export function activityItem(a, { details = true } = {}) {
  const d = a.details && typeof a.details === "object" ? a.details : null;
  const errMsg = d && d.error && typeof d.error === "object" && d.error.message ? sentence(d.error.message) : "";
  const statusIcon = a.status === "failed" ? "alert" : TYPE_ICON[a.type] || "info";
  const li = h(
    "li",
    { class: "act", "data-id": a.id, "data-status": a.status, "data-type": a.type },
    h("span", { class: "act-icon", title: `${TYPE_LABEL[a.type] || a.type} ${statusLabel(a.status).toLowerCase()}` }, icon(statusIcon)),
    h(
      "div",
      { class: "act-main" },
      h("p", { class: "act-title", text: a.title || TYPE_LABEL[a.type] || a.type }),
      a.subtitle ? h("p", { class: "act-sub", text: a.subtitle }) : null,
      errMsg ? h("p", { class: "act-err", text: errMsg }) : null,
    ),
    h(
      "div",
      { class: "act-side" },
      timeEl(a.created_at, (t) => formatRelative(t), formatDateTime, "act-time"),
      h("span", { class: "chip", text: TYPE_LABEL[a.type] || a.type }),
    ),
  );
  if (details && d) {
    const rows = detailRows(d);
    if (rows.length) {
      li.append(
        h(
          "details",
          { class: "act-details" },
          h("summary", {}, "Details"),
          h("dl", { class: "kv" }, rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
        ),
      );
    }
  }
  return li;
}

const KEY_LABELS = {
  preset_id: "Preset",
  download_id: "Download",
  files: "Files",
  files_total: "Files in preset",
  bytes: "Downloaded",
  duration_seconds: "Took",
  freed_bytes: "Freed",
  deleted: "Removed",
  kept: "Kept (shared)",
  verified: "Verified",
  corrupt: "Corrupt",
  unverifiable: "No known checksum",
  kind: "Kind",
  prompt_id: "Prompt",
  workflow: "Workflow",
  images: "Images",
  videos: "Videos",
  audio: "Audio",
};

// detailRows flattens an activity's details into label/value pairs that
// read well; unknown keys are shown as they are.
function detailRows(d) {
  const rows = [];
  // A verify's bytes were read and hashed, not downloaded.
  const labels = d.kind === "verify" ? { ...KEY_LABELS, bytes: "Checked" } : KEY_LABELS;
  for (const [k, v] of Object.entries(d)) {
    if (v === null || v === undefined || v === "") {
      continue;
    }
    let text;
    if ((k === "bytes" || k === "freed_bytes") && typeof v === "number") {
      text = formatBytes(v);
    } else if (k === "kept" && Array.isArray(v)) {
      text = v.map((f) => (f && typeof f === "object" ? `${f.path} (used by ${(f.used_by || []).join(", ")})` : String(f))).join(", ");
    } else if (Array.isArray(v) && v.every((x) => typeof x === "string")) {
      text = v.join(", ");
    } else if (k === "duration_seconds" && typeof v === "number") {
      text = formatDuration(v);
    } else if (k === "error" && typeof v === "object") {
      text = [v.code, v.message].filter(Boolean).join(": ");
    } else if (k === "outputs" && Array.isArray(v)) {
      text = v.map((o) => (o && typeof o === "object" ? o.filename || o.name || JSON.stringify(o) : String(o))).join(", ");
    } else if (typeof v === "object") {
      text = JSON.stringify(v);
    } else {
      text = String(v);
    }
    if (text) {
      rows.push([labels[k] || k.replace(/_/g, " "), text]);
    }
  }
  return rows;
}

export function emptyState(iconName, title, text, id) {
  return h("div", { class: "empty", id }, icon(iconName, "empty-icon"), h("strong", { text: title }), text ? h("p", { text }) : null);
}

// sayRefusal tells the user why queueing preset presetId was refused: a
// missing token opens the token prompt (from opener); what is already
// queued or in place is said as information, not as a failure.
export function sayRefusal(e, { msg, tokenModal, presetId, presetName, opener }) {
  const service = tokenServiceFor(e.code);
  if (service) {
    tokenModal.open({ service, presetId, presetName, opener });
  } else if (e.code === "already_installed") {
    setMessage(msg, "Every file of this preset is in place now.", "info");
  } else if (e.code === "already_queued") {
    setMessage(msg, "It is already in the queue.", "info");
  } else {
    setMessage(msg, e.message);
  }
}

// retryDownload retries download d from its row's button; the new download
// arrives as a frame.
export async function retryDownload(d, { button, msg, tokenModal }) {
  setMessage(msg, "");
  const done = busy(button, "Retrying…");
  try {
    await post(`/api/downloads/${d.id}/retry`);
  } catch (e) {
    sayRefusal(e, { msg, tokenModal, presetId: d.preset_id, presetName: d.preset_name, opener: button });
  } finally {
    done();
  }
}
