import { test } from "node:test";
import assert from "node:assert/strict";
import { Pager } from "../static/js/pager.js";

// A fetch whose answers the test gives, request by request, in any order.
function fakeFetch() {
  const pending = [];
  globalThis.fetch = (url) =>
    new Promise((resolve) => {
      pending.push({ url, answer: (body, status = 200) => resolve(new Response(JSON.stringify(body), { status })) });
    });
  return pending;
}

const pager = () =>
  new Pager({
    path: (before) => (before ? `/list?before=${before}` : "/list"),
    field: "rows",
    merge: (have, page) => [...have, ...page],
  });

test("pages follow one another", async () => {
  const pending = fakeFetch();
  const p = pager();
  const first = p.reload();
  pending[0].answer({ rows: [{ id: 9 }, { id: 8 }], next_before: 8 });
  assert.equal(await first, true);
  assert.deepEqual(p.items.map((x) => x.id), [9, 8]);
  assert.equal(p.loaded, true);

  const more = p.more();
  assert.equal(pending[1].url, "/list?before=8");
  pending[1].answer({ rows: [{ id: 7 }], next_before: null });
  assert.equal(await more, true);
  assert.deepEqual(p.items.map((x) => x.id), [9, 8, 7]);
  assert.equal(await p.more(), false); // nothing older: no request
  assert.equal(pending.length, 2);
});

test("an answer a newer reload overtook is dropped, and its error too", async () => {
  const pending = fakeFetch();
  const p = pager();
  const stale = p.reload();
  const fresh = p.reload();
  pending[1].answer({ rows: [{ id: 2 }], next_before: null });
  assert.equal(await fresh, true);
  pending[0].answer({ rows: [{ id: 1 }], next_before: 1 });
  assert.equal(await stale, false);
  assert.deepEqual(p.items.map((x) => x.id), [2]);
  assert.equal(p.nextBefore, null);

  const again = p.reload();
  const failed = p.reload();
  pending[2].answer({ error: { code: "internal", message: "boom" } }, 500);
  assert.equal(await again, false);
  pending[3].answer({ error: { code: "internal", message: "down" } }, 500);
  await assert.rejects(failed, /Down\./);
  assert.equal(p.loaded, true);
});

test("a page asked before a reload is dropped when it comes after", async () => {
  const pending = fakeFetch();
  const p = pager();
  const first = p.reload();
  pending[0].answer({ rows: [{ id: 5 }], next_before: 5 });
  await first;
  const more = p.more();
  p.empty(false);
  const reload = p.reload();
  pending[2].answer({ rows: [{ id: 6 }], next_before: null });
  await reload;
  pending[1].answer({ rows: [{ id: 4 }], next_before: null });
  assert.equal(await more, false);
  assert.deepEqual(p.items.map((x) => x.id), [6]);
});
