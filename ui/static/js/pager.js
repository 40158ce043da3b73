// A list the API pages newest first (limit, before and next_before): the
// first page, more pages on demand, and an answer that arrives after a
// newer reload asked again is dropped. Pages render; the pager only loads.

import { get } from "./api.js";

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
