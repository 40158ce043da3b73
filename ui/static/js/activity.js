// Activity: the whole log, newest first, filtered by type and status, paged
// with "Load more", and cleared (after a confirmation) with Clear History.

import { startShell } from "./shell.js";
import { post } from "./api.js";
import { Pager, PagedList } from "./pager.js";
import { setMessage, busy, reconcile } from "./dom.js";
import { mergeActivity } from "./state.js";
import { ConfirmModal } from "./dialogs.js";
import { activityItem } from "./views.js";

const PAGE = 50;

const { store } = startShell();

const list = document.getElementById("log-list");
const empty = document.getElementById("log-empty");
const emptyTitle = document.getElementById("log-empty-title");
const emptyText = document.getElementById("log-empty-text");
const loading = document.getElementById("log-loading");
const moreWrap = document.getElementById("log-more-wrap");
const moreBtn = document.getElementById("log-more");
const msg = document.getElementById("log-msg");
const typeSel = document.getElementById("filter-type");
const statusSel = document.getElementById("filter-status");
const clearBtn = document.getElementById("clear-history");
const retentionNote = document.getElementById("retention-note");

const rows = new Map(); // activity id → its <li>, kept so open details stay open

// The filters live in the URL, so a reload or a shared link keeps them.
const params = new URLSearchParams(location.search);
typeSel.value = params.get("type") || "";
statusSel.value = params.get("status") || "";

function query(before) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (typeSel.value) {
    q.set("type", typeSel.value);
  }
  if (statusSel.value) {
    q.set("status", statusSel.value);
  }
  if (before) {
    q.set("before", String(before));
  }
  return `/api/activity?${q}`;
}

const pager = new Pager({ path: query, field: "activity", merge: mergeActivity });
const paged = new PagedList({ pager, msg, moreBtn, noun: "the activity", render, fresh: mergeLive });

// mergeLive adds what the live connection knows that the last request did
// not (a row written between the two).
function mergeLive() {
  if (!store.ready || !pager.items.length) {
    return;
  }
  const oldest = pager.items[pager.items.length - 1].id;
  const extra = store.activity.filter((a) => a.id > oldest && matchesFilter(a));
  if (extra.length) {
    pager.items = mergeActivity(pager.items, extra);
    render();
  }
}

function matchesFilter(a) {
  return (!typeSel.value || a.type === typeSel.value) && (!statusSel.value || a.status === statusSel.value);
}

function render() {
  loading.hidden = pager.loaded;
  const keep = new Set(pager.items.map((a) => a.id));
  for (const id of rows.keys()) {
    if (!keep.has(id)) {
      rows.delete(id);
    }
  }
  reconcile(
    list,
    pager.items.map((a) => {
      if (!rows.has(a.id)) {
        rows.set(a.id, activityItem(a));
      }
      return rows.get(a.id);
    }),
  );
  list.hidden = pager.items.length === 0;
  empty.hidden = !pager.loaded || pager.items.length > 0;
  const filtered = typeSel.value || statusSel.value;
  emptyTitle.textContent = filtered ? "Nothing matches these filters" : "No activity yet";
  emptyText.textContent = filtered
    ? "Try another type or status."
    : "Downloads and ComfyUI generations appear here as they happen.";
  moreWrap.hidden = !pager.nextBefore;
  clearBtn.disabled = pager.loaded && pager.items.length === 0 && !filtered;
}

function filtersChanged() {
  const q = new URLSearchParams();
  if (typeSel.value) {
    q.set("type", typeSel.value);
  }
  if (statusSel.value) {
    q.set("status", statusSel.value);
  }
  const qs = q.toString();
  history.replaceState(null, "", qs ? `?${qs}` : location.pathname);
  pager.empty(false);
  render();
  paged.reload();
}

typeSel.addEventListener("change", filtersChanged);
statusSel.addEventListener("change", filtersChanged);

const confirmClear = new ConfirmModal({
  id: "clear-dialog",
  title: "Clear all activity?",
  text: "Every entry of the activity log is deleted, in every open tab. Downloads, installed models and settings stay as they are. This cannot be undone.",
  confirmLabel: "Clear history",
  action: async () => {
    const r = await post("/api/activity/clear");
    pager.empty(true);
    render();
    setMessage(msg, r.deleted === 1 ? "1 entry deleted." : `${r.deleted} entries deleted.`, "success");
  },
});
clearBtn.addEventListener("click", () => confirmClear.open(clearBtn));

let snapshots = 0;

store.subscribe((type, data) => {
  switch (type) {
    case "snapshot":
      if (data && data.settings) {
        showRetention(data.settings);
      }
      if (snapshots++ > 0) {
        // A reconnect: anything may have happened meanwhile (even a clear),
        // so start again from the server's newest rows.
        paged.reload();
      } else if (pager.loaded) {
        mergeLive();
      }
      break;
    case "activity":
      if (pager.loaded && matchesFilter(data)) {
        pager.items = mergeActivity(pager.items, [data]);
        render();
      }
      break;
    case "activity_cleared":
      pager.empty(true);
      render();
      break;
    case "settings":
      showRetention(data);
      break;
    default:
      break;
  }
});

function showRetention(s) {
  const d = s.activity_retention_days;
  retentionNote.textContent = d ? `Entries are kept for ${d === 1 ? "1 day" : `${d} days`}.` : "";
}

paged.reload();
