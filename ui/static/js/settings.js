// Settings: theme, notifications, the HuggingFace token and the activity
// retention. Every change goes to the server, which tells every tab
// (including this one) through a settings frame.

import { startShell, applyTheme } from "./shell.js";
import { get, patch, post, del } from "./api.js";
import { h, setMessage, busy } from "./dom.js";
import { sentence } from "./format.js";

const { store } = startShell();

// ---------------------------------------------------------------- theme

const themeRadios = [...document.querySelectorAll('input[name="theme"]')];
const themeMsg = document.getElementById("theme-msg");

for (const r of themeRadios) {
  r.addEventListener("change", async () => {
    if (!r.checked) {
      return;
    }
    const before = store.settings ? store.settings.theme : null;
    applyTheme(r.value); // at once; the settings frame confirms it
    setMessage(themeMsg, "");
    try {
      await patch("/api/settings", { theme: r.value });
    } catch (e) {
      if (before) {
        applyTheme(before);
        showTheme(before);
      }
      setMessage(themeMsg, `The theme was not saved: ${e.message}`);
    }
  });
}

function showTheme(theme) {
  for (const r of themeRadios) {
    r.checked = r.value === theme;
  }
}

// ---------------------------------------------------------------- notifications

const notifySwitch = document.getElementById("notify-switch");
const notifyMsg = document.getElementById("notify-msg");

// permission asks the browser to allow notifications (only from the user's
// click, as browsers require) and says whether it does.
async function permission() {
  if (typeof Notification === "undefined") {
    return "unsupported";
  }
  if (Notification.permission === "default") {
    try {
      return await Notification.requestPermission();
    } catch {
      return "denied";
    }
  }
  return Notification.permission;
}

notifySwitch.addEventListener("change", async () => {
  const on = notifySwitch.checked;
  const hadFocus = document.activeElement === notifySwitch;
  setMessage(notifyMsg, "");
  notifySwitch.disabled = true;
  try {
    if (on) {
      const p = await permission();
      if (p !== "granted") {
        notifySwitch.checked = false;
        setMessage(
          notifyMsg,
          p === "unsupported"
            ? "This browser cannot show notifications."
            : "The browser does not allow notifications from the dashboard. Allow them in the site's settings (beside the address), then turn this on again.",
        );
        return;
      }
    }
    await patch("/api/settings", { notifications: on }); // the settings frame shows it in every tab
    setMessage(notifyMsg, on ? "On: you are told when a download ends or a generation finishes while this tab is hidden." : "Off.", "success");
  } catch (e) {
    notifySwitch.checked = !on;
    setMessage(notifyMsg, `Not saved: ${e.message}`);
  } finally {
    notifySwitch.disabled = false;
    if (hadFocus) {
      notifySwitch.focus(); // disabling it took the focus away
    }
  }
});

function showNotifications(on) {
  notifySwitch.checked = !!on;
  // Turned on elsewhere (another browser), but this one has not said yes.
  if (on && typeof Notification !== "undefined" && Notification.permission !== "granted" && !notifyMsg.textContent) {
    setMessage(notifyMsg, "On, but this browser has not allowed notifications yet: turn the switch off and on again to allow them here.", "info");
  }
}

// ---------------------------------------------------------------- token

const stateText = document.getElementById("token-state-text");
const removeBtn = document.getElementById("token-remove");
const form = document.getElementById("token-form");
const input = document.getElementById("token-input");
const testBtn = document.getElementById("token-test");
const saveBtn = document.getElementById("token-save");
const tokenMsg = document.getElementById("token-msg");

const inputLabel = document.querySelector('label[for="token-input"]');

function showToken(t) {
  inputLabel.textContent = t && t.source === "db" ? "Replace the saved token" : "Token";
  if (!t || !t.set) {
    stateText.replaceChildren(h("strong", { text: "No token in use." }), " Gated models cannot be downloaded until you add one.");
    removeBtn.hidden = true;
    return;
  }
  const from = t.source === "env" ? "from the HF_TOKEN environment variable" : "saved in settings";
  stateText.replaceChildren(
    h("strong", { text: "In use: " }),
    h("code", { text: t.masked || "hidden" }),
    ` ${from}`,
    t.username ? ", for " : "",
    t.username ? h("strong", { text: t.username }) : "",
    ".",
    t.source === "env" ? h("span", { class: "muted" }, " A token saved here takes its place.") : "",
  );
  // Only a saved token can be removed; HF_TOKEN belongs to the pod.
  removeBtn.hidden = t.source !== "db";
}

input.addEventListener("input", () => {
  input.removeAttribute("aria-invalid");
  setMessage(tokenMsg, "");
});

testBtn.addEventListener("click", async () => {
  const token = input.value.trim();
  const done = busy(testBtn, "Testing…");
  setMessage(tokenMsg, "");
  try {
    // An empty field tests the token in use.
    const r = await post("/api/settings/hf-token/test", token ? { token } : undefined);
    if (r.valid) {
      const whose = token ? "This token" : "The token in use";
      setMessage(tokenMsg, `${whose} works: ${r.username}${r.role ? `, ${r.role} access` : ""}.`, "success");
    } else {
      if (token) {
        input.setAttribute("aria-invalid", "true");
      }
      setMessage(tokenMsg, sentence(r.message || "HuggingFace does not accept this token."));
    }
  } catch (e) {
    setMessage(tokenMsg, e.message);
  } finally {
    done();
  }
});

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = input.value.trim();
  if (!token) {
    input.setAttribute("aria-invalid", "true");
    setMessage(tokenMsg, "Paste a HuggingFace token first (it starts with hf_).");
    input.focus();
    return;
  }
  const done = busy(saveBtn, "Checking…");
  setMessage(tokenMsg, "");
  try {
    // The settings frame updates every tab, this one included.
    const s = await post("/api/settings/hf-token", { token });
    input.value = "";
    const who = s.hf_token && s.hf_token.username ? ` for ${s.hf_token.username}` : "";
    setMessage(tokenMsg, `Token saved${who}.`, "success");
  } catch (err) {
    if (err.code === "invalid_token") {
      input.setAttribute("aria-invalid", "true");
    }
    setMessage(tokenMsg, err.message);
  } finally {
    done();
  }
});

removeBtn.addEventListener("click", async () => {
  const done = busy(removeBtn, "Removing…");
  setMessage(tokenMsg, "");
  try {
    const s = await del("/api/settings/hf-token");
    setMessage(tokenMsg, s.hf_token && s.hf_token.set ? "Saved token removed; HF_TOKEN is used now." : "Token removed.", "success");
  } catch (err) {
    setMessage(tokenMsg, err.message);
  } finally {
    done();
    if (!removeBtn.hidden) {
      removeBtn.focus();
    } else {
      input.focus();
    }
  }
});

// ---------------------------------------------------------------- retention

const retForm = document.getElementById("retention-form");
const retInput = document.getElementById("retention-input");
const retBtn = document.getElementById("retention-save");
const retMsg = document.getElementById("retention-msg");
let retDirty = false;

retInput.addEventListener("input", () => {
  retDirty = true;
  retInput.removeAttribute("aria-invalid");
  setMessage(retMsg, "");
});

retForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const raw = retInput.value.trim();
  const n = Number(raw);
  // The range is the server's, rendered into the input's min and max.
  const lo = Number(retInput.min);
  const hi = Number(retInput.max);
  if (!/^\d+$/.test(raw) || n < lo || n > hi) {
    retInput.setAttribute("aria-invalid", "true");
    setMessage(retMsg, `Enter a whole number of days from ${lo} to ${hi}.`);
    retInput.focus();
    return;
  }
  const done = busy(retBtn, "Saving…");
  setMessage(retMsg, "");
  try {
    await patch("/api/settings", { activity_retention_days: n });
    retDirty = false;
    setMessage(retMsg, `Saved: activity is kept for ${n === 1 ? "1 day" : `${n} days`}.`, "success");
  } catch (err) {
    retInput.setAttribute("aria-invalid", "true");
    setMessage(retMsg, err.message);
  } finally {
    done();
  }
});

// ---------------------------------------------------------------- live

function show(s) {
  if (!s) {
    return;
  }
  showTheme(s.theme);
  showNotifications(s.notifications);
  showToken(s.hf_token);
  // Do not overwrite a number the user is typing.
  if (!retDirty || document.activeElement !== retInput) {
    retInput.value = String(s.activity_retention_days);
    retDirty = false;
  }
}

store.subscribe((type, data) => {
  if (type === "snapshot") {
    show(data && data.settings);
  } else if (type === "settings") {
    show(data);
  }
});

// The live snapshot brings the settings too; this only makes the page
// useful when the WebSocket is slow or blocked.
get("/api/settings")
  .then((s) => {
    if (!store.settings) {
      show(s);
    }
  })
  .catch((e) => {
    if (!store.settings) {
      stateText.textContent = `The settings could not be loaded: ${e.message}`;
    }
  });
