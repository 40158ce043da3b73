import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Store,
  mergeActivity,
  visibleDownloads,
  presetState,
  modelPage,
  backoff,
  safeNext,
  tokenServiceFor,
  badgeStatus,
  corruptFiles,
  hasFilesInPlace,
  historyRow,
  notificationFor,
  KEEP_FINISHED,
} from "../static/js/state.js";
import { Live } from "../static/js/live.js";

const dl = (id, preset, status, extra = {}) => ({ id, preset_id: preset, status, bytes_done: 0, bytes_total: 0, ...extra });

test("snapshot replaces the state; events update it", () => {
  const s = new Store();
  const seen = [];
  s.subscribe((type) => seen.push(type));
  s.apply({ type: "download", data: dl(9, "OLD", "failed") });
  s.apply({
    type: "snapshot",
    data: { downloads: [dl(1, "A", "downloading")], activity: [{ id: 2 }, { id: 3 }], settings: { theme: "light" } },
  });
  assert.deepEqual([...s.downloads.keys()], [1]);
  assert.deepEqual(s.activity.map((a) => a.id), [3, 2]);
  assert.equal(s.settings.theme, "light");
  s.apply({ type: "activity", data: { id: 4 } });
  s.apply({ type: "activity", data: { id: 4 } }); // duplicate: ignored
  assert.deepEqual(s.activity.map((a) => a.id), [4, 3, 2]);
  s.apply({ type: "activity_cleared", data: { deleted: 3 } });
  assert.equal(s.activity.length, 0);
  s.apply({ type: "settings", data: { theme: "dark" } });
  s.apply({ type: "something_new", data: {} });
  assert.deepEqual(seen, ["download", "snapshot", "activity", "activity_cleared", "settings"]);
});

test("mode comes with the snapshot and changes with each mode frame", () => {
  const s = new Store();
  const seen = [];
  s.subscribe((type) => seen.push(type));
  assert.equal(s.mode, null);
  s.apply({ type: "snapshot", data: { downloads: [], activity: [], mode: { mode: "read_only", node: "pod-b", writer: "pod-a" } } });
  assert.deepEqual(s.mode, { mode: "read_only", node: "pod-b", writer: "pod-a" });
  s.apply({ type: "mode", data: { mode: "writer", node: "pod-b", writer: "pod-b" } });
  assert.equal(s.mode.mode, "writer");
  s.apply({ type: "snapshot", data: { downloads: [], activity: [] } }); // an old server: no mode
  assert.equal(s.mode, null);
  assert.deepEqual(seen, ["snapshot", "mode", "snapshot"]);
});

test("presets come with the snapshot and are replaced by each presets frame", () => {
  const s = new Store();
  const seen = [];
  s.subscribe((type, data) => seen.push([type, data && data.presets ? data.presets.length : null]));
  assert.equal(s.presets, null);
  s.apply({ type: "snapshot", data: { downloads: [], activity: [], settings: null, presets: { presets: [{ id: "A", status: "missing" }], error: null } } });
  assert.deepEqual(s.presets, { presets: [{ id: "A", status: "missing" }], error: null, warnings: [] });
  s.apply({ type: "presets", data: { presets: [{ id: "A", status: "installed" }, { id: "B", status: "missing" }], error: "line 3: bad", warnings: ["two presets share x"] } });
  assert.deepEqual(s.presets.warnings, ["two presets share x"]);
  assert.equal(s.presets.presets[0].status, "installed");
  assert.equal(s.presets.error, "line 3: bad");
  s.apply({ type: "snapshot", data: { downloads: [], activity: [] } }); // an old server: no presets
  assert.equal(s.presets, null);
  assert.deepEqual(seen.map((x) => x[0]), ["snapshot", "presets", "snapshot"]);
  assert.equal(seen[1][1], 2);
});

test("a late API answer does not move a download backwards", () => {
  const s = new Store();
  s.applyDownload(dl(1, "A", "downloading", { bytes_done: 50 }));
  s.applyDownload(dl(1, "A", "queued"));
  assert.equal(s.downloads.get(1).status, "downloading");
  s.applyDownload(dl(1, "A", "completed"));
  s.applyDownload(dl(1, "A", "downloading"));
  assert.equal(s.downloads.get(1).status, "completed");
});

test("visibleDownloads: latest per preset, active first", () => {
  const got = visibleDownloads([
    dl(1, "A", "failed"),
    dl(2, "B", "completed"),
    dl(3, "A", "queued"),
    dl(4, "C", "downloading"),
    dl(5, "D", "cancelled"),
    dl(6, "E", "queued"),
  ]).map((d) => d.id);
  assert.deepEqual(got, [4, 3, 6, 5, 2]);
});

test("presetState prefers an active download", () => {
  const active = new Map([["A", "downloading"]]);
  assert.equal(presetState({ id: "A", status: "missing" }, active), "downloading");
  assert.equal(presetState({ id: "B", status: "installed" }, active), "installed");
});

test("a verify shows as verifying on its preset and in its badge", () => {
  const s = new Store();
  s.apply({
    type: "snapshot",
    data: { downloads: [dl(1, "A", "downloading", { kind: "verify" }), dl(2, "B", "queued", { kind: "verify" }), dl(3, "C", "downloading", { kind: "install" })], activity: [] },
  });
  const active = s.activeByPreset();
  assert.equal(presetState({ id: "A", status: "installed" }, active), "verifying");
  assert.equal(presetState({ id: "B", status: "partial" }, active), "verifying");
  assert.equal(presetState({ id: "C", status: "missing" }, active), "downloading");
  assert.equal(badgeStatus(dl(1, "A", "downloading", { kind: "verify" })), "verifying");
  assert.equal(badgeStatus(dl(1, "A", "completed", { kind: "verify" })), "verified");
  assert.equal(badgeStatus(dl(1, "A", "failed", { kind: "verify" })), "failed");
  assert.equal(badgeStatus(dl(1, "A", "completed", { kind: "install" })), "completed");
  assert.equal(badgeStatus(dl(1, "A", "downloading")), "downloading"); // an older server: no kind
});

test("corrupt files and files in place", () => {
  const p = { files: [{ path: "a", installed: true }, { path: "b", installed: false, corrupt: true }, { path: "c", installed: false }] };
  assert.deepEqual(corruptFiles(p).map((f) => f.path), ["b"]);
  assert.equal(hasFilesInPlace(p), true);
  assert.equal(hasFilesInPlace({ files: [{ path: "b", installed: false, corrupt: true }] }), true);
  assert.equal(hasFilesInPlace({ files: [{ path: "c", installed: false }] }), false);
  assert.equal(hasFilesInPlace(null), false);
});

test("a verify's history row and notification say verify", () => {
  const v = dl(7, "A", "failed", { kind: "verify", preset_name: "Model A", files_total: 2, error: { code: "checksum_mismatch", message: "a.bin does not match its checksum" } });
  assert.equal(historyRow(v).kind, "verify");
  assert.equal(historyRow(dl(8, "A", "completed")).kind, "install");
  assert.deepEqual(notificationFor("download", v, dl(7, "A", "downloading", { kind: "verify" })), {
    title: "Verify failed: Model A",
    body: "a.bin does not match its checksum",
    tag: "download-7",
  });
  const ok = dl(9, "A", "completed", { kind: "verify", preset_name: "Model A", files_total: 3, unverifiable: ["c.json"] });
  assert.equal(notificationFor("download", ok, null).title, "Verified Model A");
  assert.equal(notificationFor("download", ok, null).body, "2 files match their checksums.");
  assert.equal(notificationFor("download", dl(10, "A", "completed", { preset_name: "Model A", files_total: 1 }), null).title, "Downloaded Model A");
});

test("mergeActivity dedupes and sorts newest first", () => {
  assert.deepEqual(mergeActivity([{ id: 5 }, { id: 3 }], [{ id: 4 }, { id: 5 }, { id: 9 }]).map((a) => a.id), [9, 5, 4, 3]);
});

test("modelPage finds the licence page in an error", () => {
  assert.equal(
    modelPage("model.safetensors: access denied (403): accept the model's licence at https://huggingface.co/acme/gated, with the account"),
    "https://huggingface.co/acme/gated",
  );
  assert.equal(modelPage("no link here"), "");
});

test("backoff doubles to 30 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 10].map(backoff), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("safeNext keeps only same-site paths", () => {
  const cases = [
    [null, "/"],
    ["/activity?type=error", "/activity?type=error"],
    ["//evil.example/x", "/"],
    ["/\\evil.example", "/"],
    ["https://evil.example/", "/"],
    ["javascript:alert(1)", "/"],
    ["/login?next=/", "/"],
    ["/settings", "/settings"],
  ];
  for (const [raw, want] of cases) {
    assert.equal(safeNext(raw), want, String(raw));
  }
});

// FakeWS lets the test open, message and close connections by hand.
class FakeWS {
  static all = [];
  constructor(url) {
    this.url = url;
    FakeWS.all.push(this);
  }
  close() {
    this.onclose && this.onclose();
  }
}

test("Live reconnects with backoff and resets after a snapshot", () => {
  FakeWS.all = [];
  const waits = [];
  const pending = [];
  const timers = { set: (fn, ms) => { waits.push(ms); pending.push(fn); return pending.length; }, clear: () => {} };
  const states = [];
  const frames = [];
  const live = new Live({ url: "ws://x/ws", WebSocketImpl: FakeWS, timers, onState: (s) => states.push(s), onFrame: (f) => frames.push(f.type) }).start();
  assert.equal(FakeWS.all.length, 1);
  for (let i = 0; i < 7; i++) {
    FakeWS.all.at(-1).onclose();
    pending.shift()();
  }
  assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  const ws = FakeWS.all.at(-1);
  ws.onopen();
  ws.onmessage({ data: JSON.stringify({ type: "snapshot", data: {} }) });
  ws.onmessage({ data: "not json" });
  assert.equal(states.at(-1), "live");
  assert.deepEqual(frames, ["snapshot"]);
  ws.onclose();
  assert.equal(waits.at(-1), 1000, "the backoff starts again after a good connection");
  live.stop();
});

test("the token prompt opens for the codes that ask for a token, with the right service", () => {
  assert.equal(tokenServiceFor("hf_token_required"), "huggingface");
  assert.equal(tokenServiceFor("civitai_token_required"), "civitai");
  for (const code of ["hf_access_denied", "civitai_access_denied", "network", undefined, null]) {
    assert.equal(tokenServiceFor(code), null, String(code));
  }
});

test("the live list keeps every active download and the newest ended ones, as the server does", () => {
  const s = new Store();
  s.applyDownload(dl(1, "A", "downloading"));
  for (let id = 2; id <= KEEP_FINISHED + 4; id++) {
    s.applyDownload(dl(id, "W", "failed"));
  }
  assert.equal(s.downloads.size, KEEP_FINISHED + 1);
  assert.ok(s.downloads.has(1), "the active download stays");
  assert.ok(!s.downloads.has(2) && !s.downloads.has(4), "the oldest ended ones go");
  assert.ok(s.downloads.has(5) && s.downloads.has(KEEP_FINISHED + 4));
});
