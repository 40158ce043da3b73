// A list the API pages newest first (limit, before and next_before): the
// first page, more pages on demand, and an answer that arrives after a
// newer reload asked again is dropped. Pager only loads; PagedList adds what
// a page shows while it does (the message line, the busy Load more).

import { get } from "./api.js";
import { setMessage, busy } from "./dom.js";

export class Pager {
  // path(before) is the URL of a page (before: the cursor, or null for the
  // first); field names the list in the answer; merge(items, page) adds a
  // page to what is there.
  constructor({ path, field, merge }) {
    this.path = path;
    this.field = field;
    this.merge = merge;
    this.items = [];
    this.nextBefore = null;
    this.loaded = false;
    this.generation = 0;
  }

  // empty forgets every item: loaded says whether that emptiness is the
  // answer (the log was cleared) or a reload is on its way (filters changed).
  empty(loaded) {
    this.items = [];
    this.nextBefore = null;
    this.loaded = loaded;
  }

  // reload asks for the first page again. It resolves true when its answer
  // is the one that counts, false when a newer reload overtook it; it throws
  // the request's error (the list then counts as loaded, empty or not).
  async reload() {
    const gen = ++this.generation;
    try {
      const r = await get(this.path(null));
      if (gen !== this.generation) {
        return false;
      }
      this.items = this.merge([], r[this.field] || []);
      this.nextBefore = r.next_before ?? null;
      this.loaded = true;
      return true;
    } catch (e) {
      if (gen !== this.generation) {
        return false;
      }
      this.loaded = true;
      throw e;
    }
  }

  // more asks for the page after the oldest item shown; false when there is
  // none or a reload overtook it.
  async more() {
    if (!this.nextBefore) {
      return false;
    }
    const gen = this.generation;
    const r = await get(this.path(this.nextBefore));
    if (gen !== this.generation) {
      return false;
    }
    this.items = this.merge(this.items, r[this.field] || []);
    this.nextBefore = r.next_before ?? null;
    return true;
  }
}

// PagedList ties a Pager to a page: noun names the list in messages ("the
// history"), render draws it, fresh(items) runs after each first page (to
// merge what the live connection knows) before render.
export class PagedList {
  constructor({ pager, msg, moreBtn, noun, render, fresh }) {
    this.pager = pager;
    this.msg = msg;
    this.moreBtn = moreBtn;
    this.noun = noun;
    this.render = render;
    this.fresh = fresh || (() => {});
    moreBtn.addEventListener("click", () => this.more());
  }

  async reload() {
    setMessage(this.msg, "");
    try {
      if (await this.pager.reload()) {
        this.fresh();
        this.render();
      }
    } catch (e) {
      setMessage(this.msg, `${capital(this.noun)} could not be loaded: ${e.message}`);
      this.render();
    }
  }

  async more() {
    if (!this.pager.nextBefore) {
      return;
    }
    const done = busy(this.moreBtn, "Loading…");
    setMessage(this.msg, "");
    try {
      if (await this.pager.more()) {
        this.render();
      }
    } catch (e) {
      setMessage(this.msg, `More of ${this.noun} could not be loaded: ${e.message}`);
    } finally {
      done();
    }
  }
}

function capital(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}
