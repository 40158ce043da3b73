import { test } from "node:test";
import assert from "node:assert/strict";
import { installSource, installSummary, workflowName } from "../static/js/workflow.js";

const missing = (extra) => ({ present: false, sources: [], ...extra });

test("installSource prefers a preset's link, then the workflow's, never for a file that is here", () => {
  const both = missing({ sources: [{ kind: "url", url: "https://wf/x" }, { kind: "preset", preset_id: "P", url: "https://preset/x" }] });
  assert.equal(installSource(both).url, "https://preset/x");
  assert.equal(installSource(missing({ sources: [{ kind: "url", url: "https://wf/x" }] })).url, "https://wf/x");
  assert.equal(installSource(missing({ sources: [{ kind: "url", url: "ftp://wf/x" }] })), null);
  assert.equal(installSource(missing({})), null);
  assert.equal(installSource({ present: true, sources: [{ kind: "url", url: "https://wf/x" }] }), null);
});

test("installSummary counts what can be installed and what its size is known to be", () => {
  const a = missing({ size_bytes: 2e9, sources: [{ kind: "preset", url: "https://p/a" }] });
  const b = missing({ size_bytes: null, sources: [{ kind: "url", url: "https://w/b" }] });
  const none = missing({});
  assert.equal(installSummary([a]), "Install missing (1 file, 2.0 GB)");
  assert.equal(installSummary([a, b, none]), "Install missing (2 files, at least 2.0 GB)");
  assert.equal(installSummary([b]), "Install missing (1 file)");
});

test("workflowName is the file name without its extension", () => {
  assert.equal(workflowName("flux_dev.json"), "flux_dev");
  assert.equal(workflowName("ComfyUI_00001_.PNG"), "ComfyUI_00001_");
  assert.equal(workflowName(""), "workflow");
});
