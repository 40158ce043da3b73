// What every signed-in page shares: the live connection and its banner, the
// theme, the Log out button, the version in the footer, the token and licence
// prompts that failed downloads open, browser notifications, and the clock
// that keeps "5 minutes ago" true.

import { Live, wsURL } from "./live.js";
import { Store, notificationFor, tokenServiceFor } from "./state.js";
import { TokenModal, AccessModal } from "./dialogs.js";
import { get, post } from "./api.js";
import { formatRelative } from "./format.js";

const THEME_KEY = "dashboard.theme";

export function applyTheme(theme) {
  if (theme !== "dark" && theme !== "light") {
    return;
  }
  document.documentElement.setAttribute("data-theme", theme);
  try {
    localStorage.setItem(THEME_KEY, theme);
  } catch {
    // Only the no-flash start needs storage; the server keeps the setting.
  }
}

export function startShell() {
  const store = new Store();
  const tokenModal = new TokenModal();
  const accessModal = new AccessModal();

  store.subscribe((type, data, prev) => {
    if (type === "snapshot" && data) {
      if (data.settings) {
        applyTheme(data.settings.theme);
      }
      applyMode(data.mode);
    } else if (type === "mode") {
      applyMode(data);
    } else if (type === "settings" && data) {
      applyTheme(data.theme);
    } else if (type === "download") {
      promptOnFailure(data, prev, tokenModal, accessModal);
    }
    notify(store, type, data, prev);
  });

  const banner = document.getElementById("reconnect-banner");
  const bannerText = document.getElementById("reconnect-text");
  const liveEl = document.getElementById("live");
  const liveLabel = liveEl ? liveEl.querySelector(".live-label") : null;
  let countdown = null;
  let checkedSession = false;

  const live = new Live({
    url: wsURL(),
    onFrame: (frame) => store.apply(frame),
    onState: (state, info) => {
      if (liveEl) {
        liveEl.dataset.state = state;
        const label = state === "live" ? "Live" : state === "down" ? "Offline" : "Connecting";
        liveLabel.textContent = label;
        liveEl.title = state === "live" ? "Live updates are on" : "Live updates are paused";
      }
      clearInterval(countdown);
      if (state === "down") {
        banner.hidden = false;
        const tick = () => {
          const s = Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000));
          bannerText.textContent = s > 0 ? `next try in ${s} s` : "trying now…";
        };
        tick();
        countdown = setInterval(tick, 1000);
        // A connection refused while the server answers usually means the
        // login expired; the API call then leads to the login page.
        if (!info.wasOpen && !checkedSession) {
          checkedSession = true;
          get("/api/settings").catch(() => {});
        }
      } else if (state === "live") {
        banner.hidden = true;
        checkedSession = false;
      }
    },
  });
  document.getElementById("reconnect-now").addEventListener("click", () => live.retryNow());
  window.addEventListener("online", () => live.retryNow());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      live.retryNow();
    }
  });
  live.start();

  setupLogout();
  showVersion();
  setInterval(refreshTimes, 30000);
  return { store, live, tokenModal, accessModal };
}

// applyMode shows the read-only banner and disables every control that
// would change something (those inside fieldset[data-needs-writer]) while
// another dashboard manages the volume; a mode frame undoes it, no reload.
// Disabling the fieldset leaves each control's own disabled state alone, so
// the pages keep managing that.
export function applyMode(mode) {
  const readOnly = !!mode && mode.mode === "read_only";
  document.documentElement.dataset.mode = readOnly ? "read_only" : "writer";
  const banner = document.getElementById("readonly-banner");
  if (banner) {
    const text = document.getElementById("readonly-text");
    const strong = document.createElement("strong");
    strong.textContent = "Read-only:";
    const rest = mode && mode.writer ? ` the dashboard on ${mode.writer} manages this volume.` : " another dashboard manages this volume.";
    text.replaceChildren(strong, rest);
    banner.hidden = !readOnly;
  }
  for (const fs of document.querySelectorAll("fieldset[data-needs-writer]")) {
    fs.disabled = readOnly;
  }
}

// promptOnFailure opens the right prompt when a download has just failed
// for want of a token or a licence; an old failure in a snapshot does not.
function promptOnFailure(d, prev, tokenModal, accessModal) {
  // A verify that needs a token is retried once one is set in Settings: the
  // prompt's Save & Download would install the preset rather than verify it.
  if (d.kind === "verify" && d.error && String(d.error.code).endsWith("_token_required")) {
    return;
  }
  if (d.status !== "failed" || !d.error || (prev && prev.status === "failed")) {
    return;
  }
  if (tokenServiceFor(d.error.code)) {
    tokenModal.openFor(d);
  } else if (d.error.code === "hf_access_denied" && !tokenModal.modal.isOpen) {
    accessModal.open(d);
  }
}

// notify shows a browser notification for a download that ended or a
// generation that completed or failed, when the user turned notifications on
// and this tab is hidden. Every open tab may try; the tag makes the browser
// show one. Clicking it brings the dashboard forward.
function notify(store, type, data, prev) {
  if (!store.settings || !store.settings.notifications || document.visibilityState !== "hidden") {
    return;
  }
  if (typeof Notification === "undefined" || Notification.permission !== "granted") {
    return;
  }
  const n = notificationFor(type, data, prev);
  if (!n) {
    return;
  }
  try {
    const note = new Notification(n.title, { body: n.body, tag: n.tag, icon: "/favicon.svg" });
    note.addEventListener("click", () => {
      window.focus();
      note.close();
    });
  } catch {
    // Some browsers (Chrome on Android) only notify from a service worker.
  }
}

// setupLogout shows Log out only when a password is in use. The session
// cookie is HttpOnly, so the page asks the server instead: a request without
// the cookie is sent to /login (a redirect) exactly when a password is set.
// It is a HEAD that follows no redirect, so it costs a few bytes and never
// logs an error in the console.
async function setupLogout() {
  const btn = document.getElementById("logout");
  if (!btn) {
    return;
  }
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      await post("/api/logout");
    } catch {
      // Going to the login page is what matters.
    }
    location.assign("/login");
  });
  try {
    const res = await fetch("/", { method: "HEAD", credentials: "omit", redirect: "manual", cache: "no-store" });
    btn.hidden = !(res.type === "opaqueredirect" || res.status === 401);
  } catch {
    btn.hidden = true;
  }
}

async function showVersion() {
  const el = document.getElementById("version");
  if (!el) {
    return;
  }
  try {
    const h = await get("/api/health");
    el.textContent = `dashboard ${h.version}`;
  } catch {
    el.textContent = "";
  }
}

function refreshTimes() {
  for (const t of document.querySelectorAll("time[data-relative]")) {
    t.textContent = formatRelative(t.getAttribute("datetime"));
  }
}
