// Settings: theme, notifications, the HuggingFace and Civitai tokens and
// the activity retention. Every change goes to the server, which tells every tab
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
  if (!window.isSecureContext) {
    return "insecure"; // browsers refuse notifications to plain http:// pages (localhost aside)
  }
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
        const why = {
          insecure:
            "Browsers show notifications only for pages served over HTTPS (or from localhost). Open the dashboard at its https:// address, such as the pod's proxy, to turn them on.",
          unsupported: "This browser cannot show notifications.",
        };
        setMessage(
          notifyMsg,
          why[p] || "The browser does not allow notifications from the dashboard. Allow them in the site's settings (beside the address), then turn this on again.",
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

// ---------------------------------------------------------------- tokens

// tokenSection drives one service's token block: which token is in use and
// where it comes from, Test, Save (the service checks it first) and Remove.
// HuggingFace and Civitai differ only in what is below.
function tokenSection(o) {
  const stateText = document.getElementById(`${o.prefix}-state-text`);
  const removeBtn = document.getElementById(`${o.prefix}-remove`);
  const form = document.getElementById(`${o.prefix}-form`);
  const input = document.getElementById(`${o.prefix}-input`);
  const testBtn = document.getElementById(`${o.prefix}-test`);
  const saveBtn = document.getElementById(`${o.prefix}-save`);
  const msg = document.getElementById(`${o.prefix}-msg`);
  const inputLabel = document.querySelector(`label[for="${o.prefix}-input"]`);

  function show(t) {
    inputLabel.textContent = t && t.source === "db" ? "Replace the saved token" : "Token";
    if (!t || !t.set) {
      stateText.replaceChildren(h("strong", { text: "No token in use." }), o.without);
      removeBtn.hidden = true;
      return;
    }
    const from = t.source === "env" ? `from the ${o.env} environment variable` : "saved in settings";
    stateText.replaceChildren(
      h("strong", { text: "In use: " }),
      h("code", { text: t.masked || "hidden" }),
      ` ${from}`,
      t.username ? ", for " : "",
      t.username ? h("strong", { text: t.username }) : "",
      ".",
      t.source === "env" ? h("span", { class: "muted" }, " A token saved here takes its place.") : "",
    );
    // Only a saved token can be removed; the environment's belongs to the pod.
    removeBtn.hidden = t.source !== "db";
  }

  input.addEventListener("input", () => {
    input.removeAttribute("aria-invalid");
    setMessage(msg, "");
  });

  testBtn.addEventListener("click", async () => {
    const token = input.value.trim();
    const done = busy(testBtn, "Testing…");
    setMessage(msg, "");
    try {
      // An empty field tests the token in use.
      const r = await post(`${o.route}/test`, token ? { token } : undefined);
      if (r.valid) {
        const whose = token ? "This token" : "The token in use";
        setMessage(msg, `${whose} works: ${r.username}${r.role ? `, ${r.role} access` : ""}.`, "success");
      } else {
        if (token) {
          input.setAttribute("aria-invalid", "true");
        }
        setMessage(msg, sentence(r.message || `${o.name} does not accept this token.`));
      }
    } catch (e) {
      setMessage(msg, e.message);
    } finally {
      done();
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) {
      input.setAttribute("aria-invalid", "true");
      setMessage(msg, o.paste);
      input.focus();
      return;
    }
    const done = busy(saveBtn, "Checking…");
    setMessage(msg, "");
    try {
      // The settings frame updates every tab, this one included.
      const s = await post(o.route, { token });
      input.value = "";
      const t = s[o.key];
      const who = t && t.username ? ` for ${t.username}` : "";
      setMessage(msg, `Token saved${who}.`, "success");
    } catch (err) {
      if (err.code === "invalid_token") {
        input.setAttribute("aria-invalid", "true");
      }
      setMessage(msg, err.message);
    } finally {
      done();
    }
  });

  removeBtn.addEventListener("click", async () => {
    const done = busy(removeBtn, "Removing…");
    setMessage(msg, "");
    try {
      const s = await del(o.route);
      setMessage(msg, s[o.key] && s[o.key].set ? `Saved token removed; ${o.env} is used now.` : "Token removed.", "success");
    } catch (err) {
      setMessage(msg, err.message);
    } finally {
      done();
      if (!removeBtn.hidden) {
        removeBtn.focus();
      } else {
        input.focus();
      }
    }
  });

  return { show, stateText };
}

const tokenSections = [
  tokenSection({
    prefix: "token",
    key: "hf_token",
    route: "/api/settings/hf-token",
    name: "HuggingFace",
    env: "HF_TOKEN",
    without: " Gated models cannot be downloaded until you add one.",
    paste: "Paste a HuggingFace token first (it starts with hf_).",
  }),
  tokenSection({
    prefix: "civitai-token",
    key: "civitai_token",
    route: "/api/settings/civitai-token",
    name: "Civitai",
    env: "CIVITAI_TOKEN",
    without: " Models whose creators require a login cannot be downloaded from Civitai until you add one.",
    paste: "Paste a Civitai API key first (create one on civitai.com/user/account).",
  }),
];

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
  tokenSections[0].show(s.hf_token);
  tokenSections[1].show(s.civitai_token);
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
      for (const t of tokenSections) {
        t.stateText.textContent = `The settings could not be loaded: ${e.message}`;
      }
    }
  });
