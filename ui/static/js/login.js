// Login: posts the password as JSON and, once the session cookie is set,
// goes to the page that sent us here (same-site paths only).

import { post } from "./api.js";
import { setMessage, busy } from "./dom.js";
import { safeNext } from "./state.js";

const form = document.getElementById("login-form");
const input = document.getElementById("password");
const submit = document.getElementById("login-submit");
const msg = document.getElementById("login-msg");
const next = safeNext(new URLSearchParams(location.search).get("next"));

input.focus();
input.addEventListener("input", () => {
  input.removeAttribute("aria-invalid");
  setMessage(msg, "");
});

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!input.value) {
    input.setAttribute("aria-invalid", "true");
    setMessage(msg, "Enter the dashboard's password.");
    input.focus();
    return;
  }
  const done = busy(submit, "Logging in…");
  setMessage(msg, "");
  try {
    await post("/api/login", { password: input.value });
    // Both answers lead on: password_required false means there is no
    // password to check, so the dashboard is open anyway.
    location.replace(next);
    return;
  } catch (err) {
    input.setAttribute("aria-invalid", "true");
    if (err.code === "wrong_password") {
      setMessage(msg, "That password is not right. Try again.");
      input.select();
    } else if (err.code === "too_many_attempts") {
      setMessage(msg, err.message);
    } else {
      setMessage(msg, `Could not log in: ${err.message}`);
    }
    input.focus();
  }
  done();
});

// Without a password there is nothing to log in to: say so and offer the way in.
(async () => {
  try {
    const res = await fetch("/", { method: "HEAD", credentials: "omit", redirect: "manual", cache: "no-store" });
    if (res.ok) {
      const sub = document.getElementById("login-sub");
      sub.replaceChildren("No password is set on this dashboard. ", Object.assign(document.createElement("a"), { href: next, textContent: "Go to the dashboard →" }));
    }
  } catch {
    // Offline: the form stays as it is.
  }
})();
