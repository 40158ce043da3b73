// Home: the pod at a glance, the download queue, the preset browser and
// recent activity.

import { startShell } from "./shell.js";
import { startWorkflowCheck } from "./workflow.js";
import { h, icon, setMessage, busy, reconcile, timeEl } from "./dom.js";
import { post } from "./api.js";
import { formatBytes, formatRelative, formatDateTime, percent, sentence, downloadStats } from "./format.js";
import { presetState, spaceShort, badgeStatus, corruptFiles, hasFilesInPlace, FINISHED, tokenServiceFor } from "./state.js";
import { statusBadge, updateBadge, activityItem, emptyState, retryDownload, sayRefusal } from "./views.js";
import { PodPanel } from "./pod.js";
import { RemoveModal } from "./remove.js";

const { store, tokenModal, accessModal } = startShell();
startWorkflowCheck(store, tokenModal);

// presetName names a preset for a sentence, from the presets the page has.
function presetName(id) {
  const p = store.presets && store.presets.presets.find((x) => x.id === id);
  return (p && p.name) || id;
}

const removeModal = new RemoveModal({
  names: presetName,
  done: (p, res) => {
    const card = cards.get(p.id);
    if (card) {
      card.removed(res);
    }
  },
});

// ---------------------------------------------------------------- the pod

const pod = new PodPanel(document.getElementById("system-body"), document.getElementById("system-loading"));

// ---------------------------------------------------------------- queue

const queueList = document.getElementById("queue-list");
const queueEmpty = document.getElementById("queue-empty");
const queueCount = document.getElementById("queue-count");
const rows = new Map(); // download id → row

function renderQueue() {
  const list = store.queue();
  const keep = new Set(list.map((d) => d.id));
  for (const id of rows.keys()) {
    if (!keep.has(id)) {
      rows.delete(id);
    }
  }
  reconcile(
    queueList,
    list.map((d) => {
      let row = rows.get(d.id);
      if (!row) {
        row = downloadRow(d);
        rows.set(d.id, row);
      }
      row.update(d);
      return row.li;
    }),
  );
  const active = list.filter((d) => d.status === "queued" || d.status === "downloading").length;
  queueCount.textContent = String(active);
  queueCount.hidden = active === 0;
  queueCount.title = `${active} active`;
  queueEmpty.hidden = list.length > 0;
  queueList.hidden = list.length === 0;
}

function downloadRow(first) {
  const name = h("span", { class: "dl-name" });
  const kindChip = h("span", { class: "chip dl-kind", text: "Verify", title: "Checks the files in place against their checksums" });
  const badge = statusBadge(first.status);
  const fill = h("div", { class: "progress-fill" });
  const bar = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, fill);
  const pct = h("span", { class: "dl-pct" });
  const stats = h("div", { class: "dl-stats" });
  const file = h("div", { class: "dl-file mono" });
  const errBox = h("div", { class: "notice notice-danger dl-error", role: "alert" });
  const when = h("span", { class: "small muted" });
  const cancelBtn = h("button", { type: "button", class: "btn btn-sm", "data-action": "cancel" }, icon("x", "btn-icon"), "Cancel");
  const retryBtn = h("button", { type: "button", class: "btn btn-sm", "data-action": "retry" }, icon("refresh", "btn-icon"), "Retry");
  const tokenBtn = h("button", { type: "button", class: "btn btn-sm btn-primary", "data-action": "token" }, icon("key", "btn-icon"), "Add token");
  const licenceBtn = h("button", { type: "button", class: "btn btn-sm btn-primary", "data-action": "licence" }, "Accept licence");
  const repairBtn = h("button", { type: "button", class: "btn btn-sm btn-primary", "data-action": "repair" }, icon("refresh", "btn-icon"), "Repair");
  const note = h("p", { class: "dl-note small muted" });
  const msg = h("p", { class: "msg", role: "status", "aria-live": "polite" });
  const li = h(
    "li",
    { class: "dl", "data-id": first.id },
    h("div", { class: "dl-head" }, name, h("span", { class: "dl-tags" }, kindChip, badge)),
    h("div", { class: "dl-bar" }, bar, pct),
    stats,
    file,
    errBox,
    note,
    h("div", { class: "dl-foot" }, when, h("div", { class: "actions" }, tokenBtn, licenceBtn, repairBtn, retryBtn, cancelBtn)),
    msg,
  );
  let cur = first;

  // Repair installs the preset again: its corrupt files count as missing,
  // and each is replaced once a new copy has been verified.
  repairBtn.addEventListener("click", async () => {
    setMessage(msg, "");
    const done = busy(repairBtn, "Starting…");
    try {
      await post(`/api/presets/${encodeURIComponent(cur.preset_id)}/install`);
    } catch (e) {
      if (e.code === "hf_token_required") {
        tokenModal.open({ presetId: cur.preset_id, presetName: cur.preset_name, opener: repairBtn });
      } else {
        setMessage(msg, e.message);
      }
    } finally {
      done();
    }
  });
  cancelBtn.addEventListener("click", async () => {
    setMessage(msg, "");
    const done = busy(cancelBtn, "Cancelling…");
    try {
      await post(`/api/downloads/${cur.id}/cancel`); // the download frame shows the end
    } catch (e) {
      setMessage(msg, e.message);
    } finally {
      done();
    }
  });
  retryBtn.addEventListener("click", () => retryDownload(cur, { button: retryBtn, msg, tokenModal }));
  tokenBtn.addEventListener("click", () => tokenModal.openFor(cur, tokenBtn));
  licenceBtn.addEventListener("click", () => accessModal.open(cur, licenceBtn));

  function update(d) {
    cur = d;
    li.dataset.status = d.status;
    const verify = d.kind === "verify";
    li.dataset.kind = d.kind || "install";
    name.textContent = d.preset_name || d.preset_id;
    kindChip.hidden = !verify;
    name.title = d.preset_id;
    updateBadge(badge, badgeStatus(d));

    const finishedOK = d.status === "completed";
    const p = finishedOK ? 100 : percent(d.bytes_done, d.bytes_total);
    fill.style.width = `${p}%`;
    bar.setAttribute("aria-valuenow", String(p));
    bar.setAttribute("aria-label", `${d.preset_name || d.preset_id}: ${p}%`);
    bar.dataset.tone = finishedOK ? "success" : d.status === "failed" ? "danger" : d.status === "cancelled" ? "neutral" : "info";
    if (d.status === "downloading" && !(d.bytes_total > 0)) {
      bar.dataset.indeterminate = "";
    } else {
      delete bar.dataset.indeterminate;
    }
    pct.textContent = `${p}%`;

    stats.replaceChildren(...downloadStats(d).map(({ stat, text }) => h("span", { text, "data-stat": stat })));
    li.dataset.phase = d.phase || "";

    file.textContent = d.status === "downloading" && d.current_file ? d.current_file : "";
    file.title = file.textContent;
    file.hidden = !file.textContent;

    const err = d.status === "failed" && d.error ? d.error : null;
    errBox.hidden = !err;
    if (err) {
      const title = verify && err.code === "checksum_mismatch" ? "Corrupt files found" : errorTitle(err.code);
      errBox.replaceChildren(icon("alert", "notice-icon"), h("div", {}, h("p", { class: "notice-title", text: title }), h("p", { text: sentence(err.message) })));
    }
    // What a verify could not check: nothing states a checksum for it.
    const unchecked = verify && FINISHED.has(d.status) ? d.unverifiable || [] : [];
    note.hidden = unchecked.length === 0;
    note.textContent = unchecked.length
      ? `No known checksum, so not checked: ${unchecked.join(", ")}. Add sha256 to the preset to check ${unchecked.length === 1 ? "it" : "them"}.`
      : "";

    const finished = FINISHED.has(d.status);
    if (finished && d.completed_at) {
      const verb = d.status === "completed" ? (verify ? "Verified" : "Finished") : d.status === "failed" ? "Failed" : "Cancelled";
      when.replaceChildren(`${verb} `, timeEl(d.completed_at, formatRelative, formatDateTime));
    } else if (d.started_at) {
      when.replaceChildren(d.status === "downloading" ? "Started " : "Queued ", timeEl(d.started_at, formatRelative, formatDateTime));
    }
    cancelBtn.hidden = finished;
    // A verify that found corrupt files is mended by Repair, not by
    // checking the same files again.
    const repair = verify && err && err.code === "checksum_mismatch";
    retryBtn.hidden = !(d.status === "failed" || d.status === "cancelled") || repair;
    tokenBtn.hidden = !(err && tokenServiceFor(err.code)) || verify; // a verify: set the token, then Retry
    licenceBtn.hidden = !(err && err.code === "hf_access_denied");
    repairBtn.hidden = !repair;
    repairBtn.setAttribute("aria-label", `Repair ${d.preset_name || d.preset_id}`);
  }
  return { li, update };
}

const ERROR_TITLES = {
  hf_token_required: "HuggingFace needs a valid token",
  hf_access_denied: "Licence not accepted on HuggingFace",
  civitai_token_required: "Civitai needs a valid token",
  civitai_access_denied: "Civitai refused the download",
  not_found: "File not found",
  checksum_mismatch: "Checksum mismatch",
  insufficient_disk_space: "Not enough disk space",
  network: "Network problem",
  interrupted: "Interrupted by a restart",
  http_error: "Unexpected answer from the server",
  disk_error: "Could not write to disk",
};

function errorTitle(code) {
  return ERROR_TITLES[code] || "Download failed";
}

// ---------------------------------------------------------------- presets

const presetsBody = document.getElementById("presets-body");
const presetsNotice = document.getElementById("presets-notice");
const presetsSummary = document.getElementById("presets-summary");
const searchInput = document.getElementById("preset-search");
const typeSelect = document.getElementById("preset-type");
const stateSelect = document.getElementById("preset-state");
let presets = null; // null until the snapshot brings them
const cards = new Map(); // preset id → card
let layoutKey = "";

// showPresets takes the presets and their state from the store, which the
// snapshot and every "presets" frame keep current: presets.yaml edits,
// finished downloads and reconnects all arrive that way.
function showPresets() {
  if (!store.presets) {
    return;
  }
  presets = store.presets.presets;
  showPresetsNotice(store.presets.error);
  showPresetsWarnings(store.presets.warnings);
  fillTypes();
  renderPresets();
}

function showPresetsNotice(loadError) {
  presetsNotice.hidden = !loadError;
  presetsNotice.replaceChildren(
    ...(loadError
      ? [icon("alert", "notice-icon"), h("div", {}, h("p", { class: "notice-title", text: "presets.yaml has a problem" }), h("p", { class: "mono", text: loadError }))]
      : []),
  );
}

// showPresetsWarnings lists what presets.yaml does that works but may not be
// meant (two presets writing one path, a page URL rewritten), folded away.
function showPresetsWarnings(warnings) {
  const box = document.getElementById("presets-warnings");
  box.hidden = warnings.length === 0;
  document.getElementById("presets-warnings-title").textContent =
    warnings.length === 1 ? "presets.yaml: 1 note" : `presets.yaml: ${warnings.length} notes`;
  document.getElementById("presets-warnings-list").replaceChildren(...warnings.map((w) => h("li", { text: w })));
}

function fillTypes() {
  const types = [...new Set(presets.map((p) => p.type).filter(Boolean))].sort();
  const current = typeSelect.value;
  typeSelect.replaceChildren(h("option", { value: "" }, "All types"), ...types.map((t) => h("option", { value: t }, capital(t))));
  typeSelect.value = types.includes(current) ? current : "";
}

function capital(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function matches(p, state) {
  const q = searchInput.value.trim().toLowerCase();
  if (q) {
    const hay = `${p.name} ${p.id} ${p.description} ${p.category} ${p.type}`.toLowerCase();
    if (!q.split(/\s+/).every((w) => hay.includes(w))) {
      return false;
    }
  }
  if (typeSelect.value && p.type !== typeSelect.value) {
    return false;
  }
  const want = stateSelect.value;
  if (want === "active") {
    return state === "queued" || state === "downloading" || state === "verifying";
  }
  return !want || state === want;
}

function renderPresets() {
  if (presets === null) {
    return;
  }
  const active = store.activeByPreset();
  const seen = new Set();
  for (const p of presets) {
    seen.add(p.id);
    let card = cards.get(p.id);
    if (!card) {
      card = presetCard(p);
      cards.set(p.id, card);
    }
    card.update(p, presetState(p, active));
  }
  for (const id of cards.keys()) {
    if (!seen.has(id)) {
      cards.delete(id);
    }
  }

  const installed = presets.filter((p) => p.status === "installed").length;
  presetsSummary.textContent = presets.length ? `${installed} of ${presets.length} installed` : "";

  const groups = new Map();
  for (const p of presets) {
    if (!matches(p, presetState(p, active))) {
      continue;
    }
    const cat = p.category || "Other";
    if (!groups.has(cat)) {
      groups.set(cat, []);
    }
    groups.get(cat).push(cards.get(p.id).li);
  }
  // Rebuild the layout only when what is shown changes: moving the cards
  // would take the focus off a button just pressed.
  const key = JSON.stringify([...groups.entries()].map(([cat, lis]) => [cat, lis.map((li) => li.dataset.id)])) + presets.length;
  if (key === layoutKey) {
    return;
  }
  layoutKey = key;
  const sections = [...groups.entries()].map(([cat, lis]) =>
    h(
      "section",
      { class: "category", "aria-label": cat },
      h("div", { class: "category-head" }, h("h3", { text: cat }), h("span", { class: "count", text: String(lis.length) })),
      h("ul", { class: "preset-grid" }, lis),
    ),
  );
  if (sections.length) {
    presetsBody.replaceChildren(...sections);
  } else if (presets.length === 0) {
    presetsBody.replaceChildren(emptyState("box", "No presets yet", "Add presets to presets.yaml in the workspace's config folder; the list updates by itself."));
  } else {
    const reset = h("button", { type: "button", class: "btn btn-sm", onclick: clearFilters }, "Clear filters");
    const box = emptyState("search", "No preset matches these filters", "");
    box.append(reset);
    presetsBody.replaceChildren(box);
  }
}

function clearFilters() {
  searchInput.value = "";
  typeSelect.value = "";
  stateSelect.value = "";
  renderPresets();
  searchInput.focus();
}

function presetCard(first) {
  const nameEl = h("h4", { class: "preset-name" });
  const idEl = h("span", { class: "preset-id mono" });
  const badge = statusBadge(first.status);
  const corruptBadge = statusBadge("corrupt", "preset-corrupt");
  const desc = h("p", { class: "preset-desc" });
  const meta = h("div", { class: "preset-meta" });
  const filesSummary = h("summary");
  const filesList = h("ul");
  const files = h("details", { class: "preset-files" }, filesSummary, filesList);
  const btn = h("button", { type: "button", class: "btn btn-primary btn-sm", "data-action": "install" });
  const verifyBtn = h("button", { type: "button", class: "btn btn-sm", "data-action": "verify" }, icon("check", "btn-icon"), "Verify");
  const removeBtn = h("button", { type: "button", class: "btn btn-sm btn-danger", "data-action": "remove" }, icon("trash", "btn-icon"), "Remove");
  const warnText = h("span");
  const warn = h("p", { class: "preset-warn", id: `space-${first.id}`, hidden: true }, icon("alert", "preset-warn-icon"), warnText);
  const msg = h("p", { class: "msg", role: "status", "aria-live": "polite" });
  const li = h(
    "li",
    { class: "preset", "data-id": first.id },
    h("div", { class: "preset-head" }, h("div", {}, nameEl, idEl), h("div", { class: "preset-badges" }, badge, corruptBadge)),
    desc,
    meta,
    warn,
    h("div", { class: "preset-foot" }, files, h("div", { class: "actions preset-actions" }, verifyBtn, removeBtn, btn)),
    msg,
  );
  let cur = first;
  let curState = first.status;

  // space warns, beside Install, when the files still missing are larger
  // than the volume's free space (the install would fail for want of room).
  function space() {
    const short = curState === "missing" || curState === "partial" ? spaceShort(cur, store.system) : null;
    warn.hidden = !short;
    if (short) {
      warnText.textContent = `Needs ${formatBytes(short.need)}, but only ${formatBytes(short.free)} is free on the volume.`;
      btn.title = "Not enough free space on the volume";
      btn.dataset.warn = "space";
      btn.setAttribute("aria-describedby", warn.id);
    } else {
      btn.removeAttribute("title");
      btn.removeAttribute("aria-describedby");
      delete btn.dataset.warn;
    }
  }

  btn.addEventListener("click", async () => {
    setMessage(msg, "");
    const done = busy(btn, "Starting…");
    try {
      await post(`/api/presets/${encodeURIComponent(cur.id)}/install`); // the frames show it queued
    } catch (e) {
      sayRefusal(e, { msg, tokenModal, presetId: cur.id, presetName: cur.name, opener: btn });
    } finally {
      done();
      renderPresets();
    }
  });

  verifyBtn.addEventListener("click", async () => {
    setMessage(msg, "");
    const done = busy(verifyBtn, "Starting…");
    try {
      await post(`/api/presets/${encodeURIComponent(cur.id)}/verify`); // the queue shows it
    } catch (e) {
      setMessage(msg, e.message, e.code === "already_queued" ? "info" : "error");
    } finally {
      done();
      renderPresets();
    }
  });

  removeBtn.addEventListener("click", () => {
    setMessage(msg, "");
    removeModal.open(cur, removeBtn);
  });

  // removed says what an uninstall from this card did; the presets frame
  // brings the new state.
  function removed(res) {
    const kept = (res.kept || []).length;
    let text = res.freed_bytes > 0 ? `Removed: ${formatBytes(res.freed_bytes)} freed.` : "Removed.";
    if (kept) {
      text += ` ${kept === 1 ? "1 shared file stays" : `${kept} shared files stay`} for other presets.`;
    }
    if ((res.failed || []).length) {
      setMessage(msg, `${text} Could not remove: ${res.failed.map((f) => f.message).join("; ")}`);
    } else {
      setMessage(msg, text, "success");
    }
  }

  function update(p, state) {
    cur = p;
    curState = state;
    li.dataset.status = state;
    nameEl.textContent = p.name || p.id;
    idEl.textContent = p.id;
    updateBadge(badge, state);
    const corrupt = corruptFiles(p);
    li.dataset.corrupt = corrupt.length ? "true" : "false";
    corruptBadge.hidden = corrupt.length === 0;
    corruptBadge.title = corrupt.length ? `Corrupt: ${corrupt.map((f) => f.path).join(", ")}` : "";
    desc.textContent = p.description || "";
    desc.hidden = !p.description;
    const size = p.size_bytes > 0 ? formatBytes(p.size_bytes) : p.download_size || "";
    meta.replaceChildren(
      ...[
        p.type ? h("span", { class: "chip", text: capital(p.type) }) : null,
        size ? h("span", { class: "chip", text: size, title: "Download size" }) : null,
        p.gated ? h("span", { class: "badge badge-plain", "data-tone": "warning", title: "Needs a HuggingFace token" }, icon("lock", "badge-icon"), "Gated") : null,
      ].filter(Boolean),
    );
    const fl = p.files || [];
    const have = fl.filter((f) => f.installed).length;
    filesSummary.textContent = fl.length === 1 ? "1 file" : `${fl.length} files`;
    if (have && have < fl.length) {
      filesSummary.textContent += ` · ${have} installed`;
    }
    if (corrupt.length) {
      filesSummary.textContent += ` · ${corrupt.length} corrupt`;
    }
    filesList.replaceChildren(
      ...fl.map((f) =>
        h(
          "li",
          { "data-corrupt": f.corrupt ? "true" : null },
          h("span", { class: "path mono", title: f.path, text: f.path }),
          f.corrupt
            ? h("span", { class: "badge", "data-tone": "danger", "data-status": "corrupt", title: "A verify found this file does not match its checksum" }, "corrupt")
            : h("span", { class: f.installed ? "ok" : "" }, f.installed ? "✓ " : "", f.size_bytes > 0 ? formatBytes(f.size_bytes) : ""),
        ),
      ),
    );
    // Open the list when something in it is wrong, so the badge is seen.
    if (corrupt.length && !files.dataset.shownCorrupt) {
      files.open = true;
      files.dataset.shownCorrupt = "1";
    } else if (!corrupt.length) {
      delete files.dataset.shownCorrupt;
    }
    const labels = {
      missing: "Install",
      partial: corrupt.length ? "Repair" : "Install missing",
      queued: "Queued",
      downloading: "Downloading…",
      verifying: "Verifying…",
    };
    const label = labels[state] || "Install";
    const working = state === "queued" || state === "downloading" || state === "verifying";
    if (!btn.hasAttribute("aria-busy")) {
      btn.hidden = state === "installed";
      btn.disabled = working;
      btn.classList.toggle("btn-primary", !btn.disabled);
      btn.toggleAttribute("data-repair", corrupt.length > 0);
      const ic = state === "partial" && corrupt.length ? "refresh" : "download";
      btn.replaceChildren(...(state === "missing" || state === "partial" ? [icon(ic, "btn-icon")] : []), label);
      btn.setAttribute("aria-label", `${label}: ${p.name || p.id}`);
    }
    const inPlace = hasFilesInPlace(p);
    const focused = document.activeElement;
    if (!verifyBtn.hasAttribute("aria-busy")) {
      verifyBtn.hidden = working || !inPlace;
      verifyBtn.setAttribute("aria-label", `Verify: ${p.name || p.id}`);
    }
    removeBtn.hidden = working || !(inPlace || state === "partial");
    removeBtn.setAttribute("aria-label", `Remove: ${p.name || p.id}`);
    // A button that had the focus and went away (Remove, once the files
    // are gone) hands it to the card's main button rather than the page.
    if ((focused === removeBtn || focused === verifyBtn) && focused.hidden && !btn.hidden) {
      btn.focus();
    }
    space();
  }
  return { li, update, space, removed };
}

// showSystem updates the pod panel and the presets' space warnings.
function showSystem() {
  pod.update(store.system);
  for (const card of cards.values()) {
    card.space();
  }
}

searchInput.addEventListener("input", renderPresets);
typeSelect.addEventListener("change", renderPresets);
stateSelect.addEventListener("change", renderPresets);

// ---------------------------------------------------------------- activity

const recentList = document.getElementById("recent-list");
const recentEmpty = document.getElementById("recent-empty");
const RECENT = 8;

function renderRecent() {
  const items = store.activity.slice(0, RECENT);
  recentList.replaceChildren(...items.map((a) => activityItem(a, { details: false })));
  recentList.hidden = items.length === 0;
  recentEmpty.hidden = items.length > 0;
}

// ---------------------------------------------------------------- wiring

store.subscribe((type, data, prev) => {
  switch (type) {
    case "snapshot":
      renderQueue();
      renderRecent();
      showPresets();
      showSystem();
      break;
    case "system":
      showSystem();
      break;
    case "presets":
      showPresets();
      break;
    case "download":
      renderQueue();
      if (!prev || prev.status !== data.status) {
        renderPresets(); // queued and running downloads mark their presets at once
      }
      break;
    case "activity":
    case "activity_cleared":
      renderRecent();
      break;
    default:
      break;
  }
});

