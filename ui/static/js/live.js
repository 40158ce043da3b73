// The one WebSocket a page keeps to the dashboard. It hands every frame to
// onFrame, reports its state ("connecting", "live", "down") to onState, and
// when the connection drops retries with backoff (1, 2, 4 … 30 s). The server
// starts every connection with a snapshot, so a reconnect needs no catch-up.

import { backoff } from "./state.js";

export class Live {
  constructor({ url, onFrame, onState, WebSocketImpl, timers } = {}) {
    this.url = url;
    this.onFrame = onFrame || (() => {});
    this.onState = onState || (() => {});
    this.WS = WebSocketImpl || globalThis.WebSocket;
    this.timers = timers || { set: (fn, ms) => setTimeout(fn, ms), clear: (id) => clearTimeout(id) };
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.state = "connecting";
    this.retryAt = 0;
    this.stopped = false;
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) {
      this.timers.clear(this.timer);
      this.timer = null;
    }
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
  }

  // retryNow skips the wait (the banner's button, the browser coming online).
  retryNow() {
    if (this.stopped || this.ws) {
      return;
    }
    if (this.timer !== null) {
      this.timers.clear(this.timer);
      this.timer = null;
    }
    this.connect();
  }

  setState(state, info) {
    this.state = state;
    this.onState(state, info || {});
  }

  connect() {
    this.timer = null;
    let ws;
    try {
      ws = new this.WS(this.url);
    } catch {
      this.scheduleRetry(false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return; // not ours to understand
      }
      if (frame && frame.type === "snapshot") {
        this.attempt = 0;
        this.setState("live");
      }
      this.onFrame(frame);
    };
    ws.onerror = () => {
      // A close event always follows; retry from there.
    };
    ws.onclose = () => {
      if (this.ws !== ws) {
        return;
      }
      this.ws = null;
      this.scheduleRetry(opened);
    };
  }

  scheduleRetry(wasOpen) {
    if (this.stopped) {
      return;
    }
    const delay = backoff(this.attempt);
    this.attempt++;
    this.retryAt = Date.now() + delay;
    this.setState("down", { delay, retryAt: this.retryAt, wasOpen, attempt: this.attempt });
    this.timer = this.timers.set(() => this.connect(), delay);
  }
}

// wsURL is the dashboard's WebSocket on the page's own origin.
export function wsURL(loc = location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}
