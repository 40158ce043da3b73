// Download history: every download_history row, newest first, 50 at a time
// (Load more asks for the rows before the oldest shown), kept current by the
// download frames, with Retry on failed and cancelled downloads.

import { startShell } from "./shell.js";
import { Pager, PagedList } from "./pager.js";
import { h, icon, reconcile, timeEl } from "./dom.js";
import { formatBytes, formatDuration, formatRelative, formatDateTime, sentence } from "./format.js";
import { historyRow, mergeHistory, retryable, badgeStatus, FINISHED } from "./state.js";
import { statusBadge, updateBadge, retryDownload } from "./views.js";

const PAGE = 50;

const { store, tokenModal } = startShell();

const table = document.getElementById("hist-table");
const body = document.getElementById("hist-body");
const empty = document.getElementById("hist-empty");
const loading = document.getElementById("hist-loading");
const moreWrap = document.getElementById("hist-more-wrap");
const moreBtn = document.getElementById("hist-more");
const msg = document.getElementById("hist-msg");

const views = new Map(); // download id → its row's view

function query(before) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (before) {
    q.set("before", String(before));
  }
  return `/api/downloads/history?${q}`;
}

const pager = new Pager({
  path: query,
  field: "history",
  merge: (have, page) => {
    const seen = new Set(have.map((x) => x.id));
    return [...have, ...page.filter((x) => !seen.has(x.id))];
  },
});
const paged = new PagedList({ pager, msg, moreBtn, noun: "the history", render, fresh: mergeLive });

// mergeLive adds what the live connection knows that the request did not: a
// download queued, or one that moved on, between the two.
function mergeLive() {
  if (!store.ready) {
    return;
  }
  for (const d of store.downloads.values()) {
    pager.items = mergeHistory(pager.items, historyRow(d), !pager.nextBefore);
  }
}

function render() {
  loading.hidden = pager.loaded;
  const keep = new Set(pager.items.map((r) => r.id));
  for (const id of views.keys()) {
    if (!keep.has(id)) {
      views.delete(id);
    }
  }
  reconcile(
    body,
    pager.items.map((r) => {
      let v = views.get(r.id);
      if (!v) {
        v = rowView(r);
        views.set(r.id, v);
      }
      v.update(r);
      return v.tr;
    }),
  );
  table.hidden = pager.items.length === 0;
  empty.hidden = !pager.loaded || pager.items.length > 0;
  moreWrap.hidden = !pager.nextBefore;
}

function sizeText(r) {
  if (!(r.bytes_total > 0) && !(r.bytes_done > 0)) {
    return "—";
  }
  if (r.status === "completed" || !(r.bytes_total > r.bytes_done)) {
    return formatBytes(r.bytes_done || r.bytes_total);
  }
  return `${formatBytes(r.bytes_done)} of ${formatBytes(r.bytes_total)}`;
}

function rowView(first) {
  const name = h("span", { class: "hist-name" });
  const kind = h("span", { class: "chip hist-kind", text: "Verify", title: "Checked the files in place against their checksums" });
  const id = h("span", { class: "hist-id mono" });
  const err = h("p", { class: "hist-err" });
  const rowMsg = h("p", { class: "msg", role: "status", "aria-live": "polite" });
  const badge = statusBadge(first.status);
  const files = h("td", { class: "num", "data-label": "Files" });
  const size = h("td", { class: "num", "data-label": "Size" });
  const took = h("td", { class: "num", "data-label": "Took" });
  const retryBtn = h("button", { type: "button", class: "btn btn-sm", "data-action": "retry" }, icon("refresh", "btn-icon"), "Retry");
  const tr = h(
    "tr",
    { "data-id": first.id },
    h("td", { class: "hist-when", "data-label": "When" }, timeEl(first.started_at, formatRelative, formatDateTime)),
    h("td", { class: "hist-preset", "data-label": "Preset" }, name, kind, id, err, rowMsg),
    h("td", { "data-label": "Status" }, badge),
    files,
    size,
    took,
    h("td", { class: "hist-actions" }, retryBtn),
  );
  let cur = first;

  retryBtn.addEventListener("click", async () => {
    await retryDownload(cur, { button: retryBtn, msg: rowMsg, tokenModal });
    // Frames that arrived while the button was busy left it as it was.
    update(cur);
  });

  function update(r) {
    cur = r;
    tr.dataset.status = r.status;
    name.textContent = r.preset_name || r.preset_id;
    kind.hidden = r.kind !== "verify";
    tr.dataset.kind = r.kind || "install";
    id.textContent = r.preset_id;
    id.hidden = !r.preset_name || r.preset_name === r.preset_id;
    updateBadge(badge, badgeStatus(r));
    const e = r.status === "failed" && r.error ? r.error : null;
    err.textContent = e ? sentence(e.message) : "";
    err.hidden = !e;
    files.textContent = r.files_total > 0 ? `${r.files_completed} of ${r.files_total}` : "—";
    size.textContent = sizeText(r);
    if (r.duration_seconds !== null && r.duration_seconds !== undefined) {
      took.textContent = formatDuration(r.duration_seconds);
    } else {
      took.textContent = FINISHED.has(r.status) ? "—" : r.status === "queued" ? "waiting" : "running";
    }
    if (r.completed_at) {
      tr.title = `Queued ${formatDateTime(r.started_at)}, ended ${formatDateTime(r.completed_at)}`;
    } else {
      tr.title = `Queued ${formatDateTime(r.started_at)}`;
    }
    if (!retryBtn.hasAttribute("aria-busy")) {
      retryBtn.hidden = !retryable(r, pager.items, store.downloads);
      retryBtn.setAttribute("aria-label", `Retry ${r.preset_name || r.preset_id}`);
    }
  }
  return { tr, update };
}


let snapshots = 0;

store.subscribe((type, data) => {
  switch (type) {
    case "snapshot":
      if (snapshots++ > 0) {
        // A reconnect: anything may have happened meanwhile.
        paged.reload();
      } else if (pager.loaded) {
        mergeLive();
        render();
      }
      break;
    case "download":
      if (pager.loaded && data) {
        pager.items = mergeHistory(pager.items, historyRow(data), !pager.nextBefore);
        render();
      }
      break;
    default:
      break;
  }
});

paged.reload();
