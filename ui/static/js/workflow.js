// Home's "Check a workflow": drop (or pick) a ComfyUI workflow (.json) or an
// image ComfyUI saved (.png); the server says which model files it needs,
// which are here and where the missing ones come from; one button installs
// the missing ones, and the card follows that download live.

import { h, icon, setMessage, busy } from "./dom.js";
import { post, upload } from "./api.js";
import { formatBytes, percent, sentence } from "./format.js";
import { FINISHED, tokenServiceFor } from "./state.js";

const MAX_BYTES = 32 << 20; // the server's limit for this endpoint

// installSource is where a missing model would be fetched from: a preset
// that lists the file first (its URL is known to work), else the workflow's
// own link. null when nothing says where it comes from.
export function installSource(m) {
  if (m.present) {
    return null;
  }
  const preset = (m.sources || []).find((s) => s.kind === "preset" && s.url);
  if (preset) {
    return preset;
  }
  return (m.sources || []).find((s) => s.kind === "url" && /^https?:\/\//i.test(s.url)) || null;
}

// installSummary is the install button's label.
export function installSummary(models) {
  const todo = models.filter((m) => installSource(m));
  const known = todo.filter((m) => m.size_bytes > 0);
  const bytes = known.reduce((n, m) => n + m.size_bytes, 0);
  const files = `${todo.length} ${todo.length === 1 ? "file" : "files"}`;
  if (known.length === 0) {
    return `Install missing (${files})`;
  }
  return `Install missing (${files}, ${known.length < todo.length ? "at least " : ""}${formatBytes(bytes)})`;
}

// workflowName is the name a workflow's download goes by: its file name.
export function workflowName(fileName) {
  const base = String(fileName || "workflow").replace(/\.(json|png)$/i, "").trim();
  return base.slice(0, 120) || "workflow";
}

// startWorkflowCheck wires the card; tokenModal asks for a token an install
// needs (a gated HuggingFace file, a Civitai file behind a login).
export function startWorkflowCheck(store, tokenModal) {
  const drop = document.getElementById("wf-drop");
  const input = document.getElementById("wf-file");
  const pick = document.getElementById("wf-pick");
  const msg = document.getElementById("wf-msg");
  const result = document.getElementById("wf-result");
  const summary = document.getElementById("wf-summary");
  const list = document.getElementById("wf-list");
  const installBtn = document.getElementById("wf-install");
  const follow = document.getElementById("wf-follow");
  if (!drop) {
    return;
  }
  let file = null;
  let models = [];
  let downloadId = null;

  pick.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) {
      check(input.files[0]);
    }
    input.value = "";
  });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.dataset.over = "";
    });
  }
  drop.addEventListener("dragleave", () => delete drop.dataset.over);
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    delete drop.dataset.over;
    const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) {
      check(f);
    }
  });

  async function check(f) {
    setMessage(msg, "");
    if (f.size > MAX_BYTES) {
      setMessage(msg, `${f.name} is larger than 32 MB: that is not a workflow.`);
      return;
    }
    const png = /\.png$/i.test(f.name) || f.type === "image/png";
    // Disabling the focused button sends the focus to <body>: put it back
    // where the answer is, for keyboard and screen reader users.
    const hadFocus = document.activeElement === pick;
    const done = busy(pick, "Checking…");
    let ok = false;
    try {
      const r = await upload("/api/workflows/analyze", f, png ? "image/png" : "application/json");
      file = f;
      models = r.models || [];
      downloadId = null;
      follow.hidden = true;
      render();
      ok = true;
    } catch (e) {
      result.hidden = true;
      setMessage(msg, `${f.name}: ${e.message}`);
    } finally {
      done();
    }
    if (hadFocus) {
      (ok ? summary : pick).focus();
    }
  }

  function render() {
    const missing = models.filter((m) => !m.present);
    summary.replaceChildren(
      h("strong", { text: file.name }),
      ` needs ${models.length} ${models.length === 1 ? "model file" : "model files"}`,
      models.length ? (missing.length ? `, ${missing.length} missing.` : ", all here.") : ".",
    );
    list.replaceChildren(...models.map(row));
    const todo = models.filter((m) => installSource(m));
    installBtn.hidden = todo.length === 0 || downloadId !== null;
    installBtn.replaceChildren(icon("download", "btn-icon"), installSummary(models));
    const unknown = missing.length - todo.length;
    setMessage(msg, unknown > 0 ? `${unknown} missing ${unknown === 1 ? "file has" : "files have"} no known source: add ${unknown === 1 ? "it" : "them"} to a preset, or fetch ${unknown === 1 ? "it" : "them"} by hand.` : "", "info");
    result.hidden = false;
  }

  function row(m) {
    const src = installSource(m);
    let from = "";
    if (m.present) {
      from = "";
    } else if (src && src.kind === "preset") {
      from = `Preset ${src.preset_name || src.preset_id}`;
    } else if (src) {
      from = `The workflow's link (${hostOf(src.url)})`;
    } else {
      from = "No known source";
    }
    return h(
      "li",
      { class: "wf-item", "data-present": m.present ? "true" : "false" },
      h("span", { class: "wf-name mono", title: m.path, text: m.name }),
      h("span", { class: "chip", text: m.directory }),
      m.present
        ? h("span", { class: "badge", "data-tone": "success" }, "Present")
        : h("span", { class: "badge", "data-tone": "warning" }, "Missing"),
      h("span", { class: "wf-size small muted", text: m.size_bytes > 0 ? formatBytes(m.size_bytes) : "" }),
      h("span", { class: "wf-source small", text: from }),
    );
  }

  installBtn.addEventListener("click", async () => {
    const todo = models.filter((m) => installSource(m));
    if (todo.length === 0) {
      return;
    }
    setMessage(msg, "");
    const hadFocus = document.activeElement === installBtn;
    let asked = false; // the token dialog has the focus
    const done = busy(installBtn, "Starting…");
    const name = workflowName(file.name);
    const install = async () => {
      const d = await post("/api/workflows/install", {
        name,
        models: todo.map((m) => ({ directory: m.directory, name: m.name, url: installSource(m).url, ...(m.hash ? { hash: m.hash } : {}) })),
      });
      downloadId = d.id;
      // The download may have ended before this answer came (a refused
      // host, nothing left to fetch): its last frame was then ignored.
      const now = store.downloads.get(d.id) || d;
      showDownload(now);
      if (FINISHED.has(now.status)) {
        ended(now);
      }
    };
    try {
      await install();
    } catch (e) {
      if (tokenModal && tokenServiceFor(e.code)) {
        // A HuggingFace or Civitai file needs a token: ask for it, then install.
        asked = true;
        tokenModal.open({ service: tokenServiceFor(e.code), presetName: name, opener: installBtn, action: install });
      } else {
        setMessage(msg, e.message);
      }
    } finally {
      done();
      render();
    }
    if (hadFocus && !asked) {
      // Install hides itself while the download runs: follow it instead.
      (follow.hidden ? (installBtn.hidden ? summary : installBtn) : follow).focus();
    }
  });

  function showDownload(d) {
    follow.hidden = false;
    let text;
    if (d.status === "queued") {
      text = "Queued: it shows under Downloads above.";
    } else if (d.status === "downloading") {
      text = `Downloading: ${percent(d.bytes_done, d.bytes_total)}% (${d.files_completed} of ${d.files_total} files).`;
    } else if (d.status === "completed") {
      text = "Installed: every missing file is in place.";
    } else if (d.status === "cancelled") {
      text = "Cancelled.";
    } else {
      text = `The download failed: ${d.error ? sentence(d.error.message) : "see Downloads above."}`;
    }
    follow.textContent = text;
    follow.dataset.status = d.status;
  }

  store.subscribe((type, d) => {
    if (type !== "download" || downloadId === null || !d || d.id !== downloadId) {
      return;
    }
    showDownload(d);
    if (FINISHED.has(d.status)) {
      ended(d);
    }
  });

  // ended checks the same file again once its download is over: what is on
  // disk now, and Install back for what is still missing (unless every
  // file came).
  let checked = null; // the download whose end was handled
  function ended(d) {
    if (!file || checked === d.id) {
      return;
    }
    checked = d.id;
    const f = file;
    upload("/api/workflows/analyze", f, /\.png$/i.test(f.name) || f.type === "image/png" ? "image/png" : "application/json")
      .then((r) => {
        if (file === f) {
          models = r.models || [];
          downloadId = d.status === "completed" ? d.id : null;
          render();
        }
      })
      .catch(() => {});
  }
}

function hostOf(u) {
  try {
    return new URL(u).host;
  } catch {
    return "link";
  }
}
