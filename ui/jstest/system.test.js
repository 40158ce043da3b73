import { test } from "node:test";
import assert from "node:assert/strict";
import { Store, missingBytes, spaceShort, volumeTaken, historyRow, mergeHistory, retryable, notificationFor } from "../static/js/state.js";

test("the system measurement comes with the snapshot and every system frame", () => {
  const s = new Store();
  const seen = [];
  s.subscribe((type) => seen.push(type));
  s.apply({ type: "snapshot", data: { downloads: [], activity: [], system: { volume: { free_bytes: 5 } } } });
  assert.equal(s.system.volume.free_bytes, 5);
  s.apply({ type: "snapshot", data: { downloads: [], activity: [], system: null } }); // no recent one: keep what is shown
  assert.equal(s.system.volume.free_bytes, 5);
  s.apply({ type: "system", data: { volume: { free_bytes: 7 } } });
  s.apply({ type: "system", data: null });
  assert.equal(s.system.volume.free_bytes, 7);
  assert.deepEqual(seen, ["snapshot", "snapshot", "system"]);
});

test("a preset too big for the free space is told apart", () => {
  const p = { files: [{ installed: true, size_bytes: 100 }, { installed: false, size_bytes: 300 }, { installed: false, size_bytes: 0 }] };
  assert.equal(missingBytes(p), 300);
  const sys = (free, total = 1000) => ({ volume: { free_bytes: free, total_bytes: total } });
  assert.deepEqual(spaceShort(p, sys(299)), { need: 300, free: 299 });
  assert.equal(spaceShort(p, sys(300)), null);
  assert.equal(spaceShort(p, sys(0, 0)), null); // size unknown: no warning
  assert.equal(spaceShort(p, null), null);
});

test("the volume bar fills what the text does not call free", () => {
  // ext4 with root's 5 % reserve: 20 used, 75 free of 100; the bar is 25.
  assert.equal(volumeTaken({ total_bytes: 100, used_bytes: 20, free_bytes: 75 }), 25);
  assert.equal(volumeTaken({ total_bytes: 100, used_bytes: 100, free_bytes: 0 }), 100);
  assert.equal(volumeTaken({ total_bytes: 100, used_bytes: 0, free_bytes: 120 }), 0);
  assert.equal(volumeTaken({ total_bytes: 0, used_bytes: 0, free_bytes: 0 }), 0);
  assert.equal(volumeTaken(null), 0);
});

test("download frames become history rows, merged newest first", () => {
  const d = { id: 7, preset_id: "A", preset_name: "Model A", status: "failed", error: { code: "network", message: "gone" }, files_completed: 1, files_total: 2,
    bytes_done: 5, bytes_total: 10, started_at: "2026-01-01T10:00:00Z", completed_at: "2026-01-01T10:02:05Z" };
  const r = historyRow(d);
  assert.equal(r.duration_seconds, 125);
  assert.deepEqual(r.error, { code: "network", message: "gone" });
  assert.equal(historyRow({ ...d, status: "downloading", completed_at: null }).duration_seconds, null);
  assert.equal(historyRow({ ...d, status: "cancelled" }).error, null);

  const page = [{ id: 9, preset_id: "B" }, { id: 5, preset_id: "A" }];
  assert.deepEqual(mergeHistory(page, { id: 12, preset_id: "C" }, false).map((x) => x.id), [12, 9, 5]); // new: on top
  assert.deepEqual(mergeHistory(page, { id: 7, preset_id: "A" }, false).map((x) => x.id), [9, 7, 5]); // inside the page
  assert.deepEqual(mergeHistory(page, { id: 3, preset_id: "A" }, false).map((x) => x.id), [9, 5]); // a later page's
  assert.deepEqual(mergeHistory(page, { id: 3, preset_id: "A" }, true).map((x) => x.id), [9, 5, 3]); // no later page
  const updated = mergeHistory([{ id: 5, preset_id: "A", preset_name: "Model A", status: "downloading" }], { id: 5, preset_id: "A", preset_name: "", status: "completed" }, false);
  assert.deepEqual(updated, [{ id: 5, preset_id: "A", preset_name: "Model A", status: "completed" }]);
});

test("Retry is offered on failed and cancelled rows not yet retried", () => {
  const rows = [{ id: 3, preset_id: "A", status: "downloading" }, { id: 2, preset_id: "A", status: "failed" }, { id: 1, preset_id: "B", status: "cancelled" }, { id: 0, preset_id: "C", status: "completed" }];
  assert.deepEqual(rows.map((r) => retryable(r, rows)), [false, false, true, false]);
});

test("notifications: a download that ends, a generation that finishes; once", () => {
  const d = (status, extra = {}) => ({ id: 4, preset_id: "FLUX", preset_name: "FLUX.1", status, files_total: 2, ...extra });
  assert.deepEqual(notificationFor("download", d("completed"), d("downloading")), { title: "Downloaded FLUX.1", body: "2 files are in place.", tag: "download-4" });
  assert.deepEqual(notificationFor("download", d("failed", { error: { message: "Network problem." } }), d("downloading")), { title: "Download failed: FLUX.1", body: "Network problem.", tag: "download-4" });
  assert.equal(notificationFor("download", d("cancelled"), d("queued")).title, "Download cancelled: FLUX.1");
  assert.equal(notificationFor("download", d("downloading"), d("queued")), null);
  assert.equal(notificationFor("download", d("completed"), d("completed")), null); // said already
  const g = (status) => ({ id: 11, type: "generation", status, title: status === "completed" ? "4 images generated" : "Generation failed", subtitle: "portrait.json" });
  assert.deepEqual(notificationFor("activity", g("completed")), { title: "4 images generated", body: "portrait.json", tag: "activity-11" });
  assert.equal(notificationFor("activity", g("failed")).title, "Generation failed");
  assert.equal(notificationFor("activity", g("started")), null);
  assert.equal(notificationFor("activity", { id: 1, type: "download", status: "completed", title: "Downloaded X" }), null); // the download frame says it
  assert.equal(notificationFor("settings", {}), null);
});

test("memory in binary units, as GPUs and RAM are sold", async () => {
  const { formatMemory } = await import("../static/js/format.js");
  assert.equal(formatMemory(81920 * 2 ** 20), "80.0 GiB");
  assert.equal(formatMemory(24564 * 2 ** 20), "24.0 GiB");
  assert.equal(formatMemory(512), "512 B");
  assert.equal(formatMemory(1536), "1.5 KiB");
  assert.equal(formatMemory(1023.99 * 2 ** 30), "1.0 TiB");
  assert.equal(formatMemory(-1), "—");
});

test("retryable offers a workflow's download only while this run of the dashboard knows it", () => {
  const wf = (id) => ({ id, preset_id: "workflow:ComfyUI_00001_", status: "failed" });
  const rows = [wf(7), wf(3)];
  const live = new Map([[7, { id: 7 }]]);
  assert.equal(retryable(rows[0], rows, live), true);
  assert.equal(retryable(wf(3), [wf(3)], live), false, "from before a restart");
  assert.equal(retryable(wf(7), [wf(7)]), false, "not connected yet");
  assert.equal(retryable({ id: 3, preset_id: "SDXL", status: "failed" }, [], live), true, "a preset's is always retryable");
});
