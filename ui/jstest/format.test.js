import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, formatSpeed, formatDuration, formatETA, percent, formatRelative, sentence, downloadStats } from "../static/js/format.js";

test("formatBytes reads like people write sizes", () => {
  const cases = [
    [0, "0 B"],
    [999, "999 B"],
    [1000, "1.0 KB"],
    [1536, "1.5 KB"],
    [335_000_000, "335 MB"],
    [4_800_000_000, "4.8 GB"],
    [23_800_000_000, "23.8 GB"],
    [999_960_000, "1.0 GB"],
    [1.2e12, "1.2 TB"],
    [-1, "—"],
    [NaN, "—"],
    [undefined, "—"],
  ];
  for (const [n, want] of cases) {
    assert.equal(formatBytes(n), want, `formatBytes(${n})`);
  }
});

test("formatSpeed", () => {
  assert.equal(formatSpeed(12_300_000), "12.3 MB/s");
  assert.equal(formatSpeed(0), "—");
  assert.equal(formatSpeed(null), "—");
});

test("formatDuration and formatETA", () => {
  const cases = [
    [0, "0 s"],
    [45, "45 s"],
    [60, "1 min"],
    [150, "3 min"],
    [180, "3 min"],
    [3600, "1 h"],
    [4500, "1 h 15 min"],
    [7199, "2 h"],
    [86400, "1 day"],
    [200000, "2 days 8 h"],
  ];
  for (const [s, want] of cases) {
    assert.equal(formatDuration(s), want, `formatDuration(${s})`);
  }
  assert.equal(formatETA(180), "3 min left");
  assert.equal(formatETA(0.2), "almost done");
  assert.equal(formatETA(null), "");
  assert.equal(formatETA(-5), "");
});

test("percent floors and clamps", () => {
  assert.equal(percent(0, 100), 0);
  assert.equal(percent(999, 1000), 99);
  assert.equal(percent(1000, 1000), 100);
  assert.equal(percent(2000, 1000), 100);
  assert.equal(percent(5, 0), 0);
});

test("formatRelative", () => {
  const now = Date.parse("2026-02-20T12:00:00Z");
  const ago = (s) => new Date(now - s * 1000).toISOString();
  const cases = [
    [10, "just now"],
    [-30, "just now"],
    [60, "1 minute ago"],
    [5 * 60, "5 minutes ago"],
    [59.8 * 60, "1 hour ago"],
    [2 * 3600, "2 hours ago"],
    [26 * 3600, "yesterday"],
    [3 * 86400, "3 days ago"],
    [15 * 86400, "2 weeks ago"],
  ];
  for (const [s, want] of cases) {
    assert.equal(formatRelative(ago(s), now), want, `${s}s ago`);
  }
  assert.equal(formatRelative(ago(90 * 86400), now), "Nov 22, 2025");
  assert.equal(formatRelative("not a date", now), "—");
});

test("sentence", () => {
  assert.equal(sentence("the token is empty"), "The token is empty.");
  assert.equal(sentence("Done!"), "Done!");
  assert.equal(sentence("checkpoints/ace_step.safetensors: not found at x"), "checkpoints/ace_step.safetensors: not found at x.");
  assert.equal(sentence("model.safetensors: checksum mismatch"), "model.safetensors: checksum mismatch.");
  assert.equal(sentence(""), "");
});

test("downloadStats says Verifying… while the checksum catches up", () => {
  const base = { bytes_total: 2e9, bytes_done: 1e9, files_total: 1, files_completed: 0, speed_bps: 5e7, eta_seconds: 20 };
  const line = (d) => downloadStats(d).map((s) => `${s.stat}=${s.text}`);
  assert.deepEqual(line({ ...base, status: "downloading", phase: "downloading", connections: 8 }), [
    "bytes=1.0 GB of 2.0 GB",
    "speed=50.0 MB/s",
    "eta=20 s left",
    "connections=8 connections",
    "files=0 of 1 file",
  ]);
  assert.deepEqual(line({ ...base, status: "downloading", phase: "verifying", connections: 0 }), ["bytes=1.0 GB of 2.0 GB", "phase=Verifying…", "files=0 of 1 file"]);
  assert.deepEqual(line({ ...base, status: "downloading", phase: "downloading", connections: 1 }).includes("connections=1 connections"), false);
  assert.deepEqual(line({ ...base, status: "queued", phase: null, connections: 0 }), ["bytes=1.0 GB of 2.0 GB", "queue=Waiting in the queue", "files=0 of 1 file"]);
  assert.deepEqual(line({ ...base, status: "completed", phase: null, connections: 0 }), ["bytes=1.0 GB of 2.0 GB", "files=0 of 1 file"]);
  // A verify hashes all along: its speed and ETA are shown, not "Verifying…".
  assert.deepEqual(line({ ...base, kind: "verify", status: "downloading", phase: "verifying", connections: 0 }), [
    "bytes=1.0 GB of 2.0 GB",
    "speed=50.0 MB/s",
    "eta=20 s left",
    "files=0 of 1 file",
  ]);
});
