// Modal dialogs: a generic accessible modal on <dialog> (focus kept inside,
// Escape closes, focus goes back to what opened it), the token prompt from
// the design (HuggingFace or Civitai), the licence prompt, and a
// confirmation dialog.

import { h, icon, setMessage, busy } from "./dom.js";
import { post } from "./api.js";
import { modelPage, tokenServiceFor } from "./state.js";
import { sentence } from "./format.js";

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

let seq = 0;

// While a modal is open the page behind it is pinned where it was: it cannot
// scroll, and it is no taller than the window, so the backdrop covers all of
// it (a page longer than the window used to show a strip below the backdrop
// when captured or overscrolled). Closing puts the page back where it was.
let locks = 0;
let lockedY = 0;

function lockPage() {
  if (locks++ > 0) {
    return;
  }
  const root = document.documentElement;
  const body = document.body;
  lockedY = window.scrollY;
  const scrollbar = window.innerWidth - root.clientWidth;
  root.classList.add("modal-open");
  body.style.top = `${-lockedY}px`;
  if (scrollbar > 0) {
    body.style.paddingRight = `${scrollbar}px`;
  }
}

function unlockPage() {
  if (locks === 0 || --locks > 0) {
    return;
  }
  const body = document.body;
  document.documentElement.classList.remove("modal-open");
  body.style.top = "";
  body.style.paddingRight = "";
  window.scrollTo(0, lockedY);
}

export class Modal {
  // content(ids) returns the dialog's children; ids.title and ids.desc are
  // the ids to give the title and description.
  constructor({ id, content }) {
    const n = ++seq;
    this.ids = { title: `modal-title-${n}`, desc: `modal-desc-${n}` };
    this.el = h("dialog", { class: "modal", id, "aria-labelledby": this.ids.title, "aria-describedby": this.ids.desc });
    this.el.append(...content(this.ids));
    this.opener = null;
    this.busy = false;
    this.el.addEventListener("keydown", (e) => this.trap(e));
    this.el.addEventListener("cancel", (e) => {
      // Escape closes, except while a request it started is still running.
      if (this.busy) {
        e.preventDefault();
      }
    });
    this.el.addEventListener("close", () => {
      unlockPage();
      this.restoreFocus();
    });
    document.body.append(this.el);
  }

  get isOpen() {
    return this.el.open;
  }

  open(opener, focusEl) {
    if (!this.el.open) {
      const active = document.activeElement;
      this.opener = opener || (active && active !== document.body ? active : null);
      lockPage();
      this.el.showModal();
    }
    const target = focusEl || this.focusables()[0];
    if (target) {
      target.focus();
    }
  }

  close() {
    if (this.el.open) {
      this.el.close();
    }
  }

  focusables() {
    return [...this.el.querySelectorAll(FOCUSABLE)].filter((el) => el.getClientRects().length > 0);
  }

  // trap keeps Tab inside the dialog: from the last control to the first and back.
  trap(e) {
    if (e.key !== "Tab") {
      return;
    }
    const items = this.focusables();
    if (items.length === 0) {
      e.preventDefault();
      return;
    }
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && (document.activeElement === first || !this.el.contains(document.activeElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  }

  restoreFocus() {
    const o = this.opener;
    this.opener = null;
    if (o && o.isConnected && typeof o.focus === "function") {
      o.focus();
    } else {
      const main = document.querySelector("main");
      if (main) {
        main.focus();
      }
    }
  }
}

function titleRow(ids, iconName, text, tone) {
  return h(
    "h2",
    { class: "modal-title", id: ids.title },
    h("span", { class: "modal-title-icon", "data-tone": tone }, icon(iconName)),
    h("span", { text }),
  );
}

// TOKEN_SERVICES is what the token prompt says and where it sends the
// token, per service (the keys are those of tokenServiceFor).
const TOKEN_SERVICES = {
  huggingface: {
    name: "HuggingFace",
    route: "/api/settings/hf-token",
    field: "hf_token",
    label: "HuggingFace access token",
    placeholder: "hf_xxxxxxxxxxxxxxxxxxxx",
    needs: "This model requires a HuggingFace token. ",
    revoked: "HuggingFace refused the token in use: it may have been revoked or have expired. ",
    paste: "Paste your HuggingFace token first (it starts with hf_).",
    get: "https://huggingface.co/settings/tokens",
  },
  civitai: {
    name: "Civitai",
    route: "/api/settings/civitai-token",
    field: "civitai_token",
    label: "Civitai API key",
    placeholder: "Civitai API key",
    needs: "This model's creator lets only signed-in users download it: it needs a Civitai API key. ",
    revoked: "Civitai asked for a login: the token in use, if there is one, was refused (it may have been revoked). ",
    paste: "Paste your Civitai API key first (create one on civitai.com/user/account).",
    get: "https://civitai.com/user/account",
  },
};

// TokenModal asks for a service's token (HuggingFace or Civitai), checks
// and saves it through that service's validating endpoint, then installs
// what needed it.
export class TokenModal {
  constructor() {
    this.preset = null;
    this.service = TOKEN_SERVICES.huggingface;
    this.action = null;
    this.modal = new Modal({
      id: "token-modal",
      content: (ids) => {
        this.text = h("p", { class: "modal-text", id: ids.desc });
        this.input = h("input", {
          id: "token-modal-input",
          class: "input mono",
          type: "password",
          name: "hf_token",
          placeholder: "hf_xxxxxxxxxxxxxxxxxxxx",
          autocomplete: "off",
          spellcheck: "false",
          autocapitalize: "off",
          "aria-describedby": "token-modal-msg",
          oninput: () => {
            this.input.removeAttribute("aria-invalid");
            setMessage(this.msg, "");
          },
        });
        this.label = h("label", { for: "token-modal-input" }, "HuggingFace access token");
        this.getLink = h("a", { href: "https://huggingface.co/settings/tokens", target: "_blank", rel: "noopener noreferrer", id: "token-modal-get" }, "Get one here →");
        this.testBtn = h("button", { type: "button", class: "btn", id: "token-modal-test", onclick: () => this.test() }, "Test");
        this.msg = h("p", { class: "msg", id: "token-modal-msg", role: "status", "aria-live": "polite" });
        this.saveBtn = h("button", { type: "submit", class: "btn btn-primary", id: "token-modal-save" }, icon("download", "btn-icon"), "Save & Download");
        this.cancelBtn = h("button", { type: "button", class: "btn", id: "token-modal-cancel", onclick: () => this.modal.close() }, "Cancel");
        const form = h(
          "form",
          { novalidate: true, onsubmit: (e) => { e.preventDefault(); this.save(); } },
          h(
            "div",
            { class: "modal-body" },
            titleRow(ids, "lock", "Authentication Required"),
            this.text,
            h(
              "div",
              { class: "field" },
              this.label,
              h("div", { class: "input-row" }, this.input, this.testBtn),
              this.msg,
            ),
            h("p", { class: "small muted" }, "Don't have a token? ", this.getLink),
          ),
          h("div", { class: "modal-foot" }, this.cancelBtn, h("div", { class: "actions" }, this.saveBtn)),
        );
        return [form];
      },
    });
  }

  // open asks for a token of service ("huggingface", the default, or
  // "civitai") for preset {id, name}; reason "revoked" says the token in
  // use stopped working. action, when given, is what runs once the token is
  // saved instead of installing the preset (a workflow's install).
  open({ service = "huggingface", presetId, presetName, reason, opener, action }) {
    this.service = TOKEN_SERVICES[service] || TOKEN_SERVICES.huggingface;
    this.preset = { id: presetId, name: presetName || presetId };
    this.action = action || (() => post(`/api/presets/${encodeURIComponent(presetId)}/install`));
    const svc = this.service;
    this.label.textContent = svc.label;
    this.input.name = svc.field;
    this.input.placeholder = svc.placeholder;
    this.getLink.href = svc.get;
    this.modal.el.dataset.service = service;
    this.text.replaceChildren(
      reason === "revoked" ? svc.revoked : "",
      svc.needs,
      h("strong", { text: this.preset.name }),
      " will download as soon as the token is saved.",
    );
    setMessage(this.msg, "");
    this.input.value = "";
    this.input.removeAttribute("aria-invalid");
    this.modal.open(opener, this.input);
  }

  // openFor asks for the token a failed download d needs (its error code
  // says which), then installs its preset again, or retries it when it was
  // a workflow's (a workflow is no preset that can be installed by id).
  openFor(d, opener) {
    const service = tokenServiceFor(d.error && d.error.code);
    if (!service) {
      return;
    }
    const workflow = String(d.preset_id).startsWith("workflow:");
    this.open({
      service,
      presetId: d.preset_id,
      presetName: d.preset_name,
      reason: "revoked",
      opener,
      action: workflow ? () => post(`/api/downloads/${d.id}/retry`) : undefined,
    });
  }

  token() {
    const t = this.input.value.trim();
    if (!t) {
      this.input.setAttribute("aria-invalid", "true");
      setMessage(this.msg, this.service.paste);
      this.input.focus();
    }
    return t;
  }

  async test() {
    const token = this.token();
    if (!token) {
      return;
    }
    const done = busy(this.testBtn, "Testing…");
    this.modal.busy = true;
    try {
      const r = await post(`${this.service.route}/test`, { token });
      if (r.valid) {
        setMessage(this.msg, `Valid token for ${r.username}${r.role ? ` (${r.role} access)` : ""}.`, "success");
      } else {
        this.input.setAttribute("aria-invalid", "true");
        setMessage(this.msg, sentence(r.message || `${this.service.name} does not accept this token.`));
      }
    } catch (e) {
      setMessage(this.msg, e.message);
    } finally {
      this.modal.busy = false;
      done();
    }
  }

  async save() {
    const token = this.token();
    if (!token || !this.preset) {
      return;
    }
    const done = busy(this.saveBtn, "Saving…");
    this.cancelBtn.disabled = true;
    this.modal.busy = true;
    const finish = () => {
      this.modal.busy = false;
      this.cancelBtn.disabled = false;
      done();
    };
    try {
      await post(this.service.route, { token });
    } catch (e) {
      if (e.code === "invalid_token") {
        this.input.setAttribute("aria-invalid", "true");
      }
      setMessage(this.msg, e.message);
      finish();
      this.input.focus();
      return;
    }
    try {
      // The download frame shows it queued, in this tab as in every other.
      await this.action();
    } catch (e) {
      if (e.code !== "already_queued") {
        setMessage(this.msg, `The token is saved, but the download did not start: ${e.message}`);
        finish();
        return;
      }
    }
    finish();
    this.input.value = "";
    this.modal.close();
  }
}

// AccessModal explains an hf_access_denied failure: the licence must be
// accepted on the model's page, then the download retried.
export class AccessModal {
  constructor() {
    this.download = null;
    this.modal = new Modal({
      id: "access-modal",
      content: (ids) => {
        this.text = h("p", { class: "modal-text", id: ids.desc });
        this.link = h("a", { class: "btn", id: "access-modal-link", target: "_blank", rel: "noopener noreferrer" }, "Open the model page", icon("external", "btn-icon"));
        this.detail = h("p", { class: "small muted mono" });
        this.msg = h("p", { class: "msg", role: "status", "aria-live": "polite" });
        this.retryBtn = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.retry() }, icon("refresh", "btn-icon"), "Retry download");
        return [
          h("div", { class: "modal-body" }, titleRow(ids, "alert", "Accept the model's licence", "warning"), this.text, h("div", { class: "actions" }, this.link), this.detail, this.msg),
          h("div", { class: "modal-foot" }, h("button", { type: "button", class: "btn", onclick: () => this.modal.close() }, "Close"), h("div", { class: "actions" }, this.retryBtn)),
        ];
      },
    });
  }

  open(d, opener) {
    this.download = d;
    const page = modelPage(d.error && d.error.message);
    this.text.replaceChildren(
      "HuggingFace refused access to ",
      h("strong", { text: d.preset_name || d.preset_id }),
      ". This model is gated: open its page, accept the licence with the account your token belongs to, then retry.",
    );
    this.link.hidden = !page;
    if (page) {
      this.link.href = page;
    }
    this.detail.textContent = d.error ? sentence(d.error.message) : "";
    setMessage(this.msg, "");
    this.modal.open(opener);
  }

  async retry() {
    if (!this.download) {
      return;
    }
    const done = busy(this.retryBtn, "Retrying…");
    this.modal.busy = true;
    try {
      await post(`/api/downloads/${this.download.id}/retry`);
      this.modal.busy = false;
      done();
      this.modal.close();
    } catch (e) {
      this.modal.busy = false;
      done();
      setMessage(this.msg, e.message);
    }
  }
}

// ConfirmModal asks before something that cannot be undone, runs it, and
// shows its error in place when it fails.
export class ConfirmModal {
  constructor({ id, title, text, confirmLabel, action }) {
    this.action = action;
    this.modal = new Modal({
      id,
      content: (ids) => {
        this.msg = h("p", { class: "msg", role: "status", "aria-live": "polite" });
        this.cancelBtn = h("button", { type: "button", class: "btn", onclick: () => this.modal.close() }, "Cancel");
        this.okBtn = h("button", { type: "button", class: "btn btn-danger-solid", id: `${id}-confirm`, onclick: () => this.confirm() }, confirmLabel);
        return [
          h("div", { class: "modal-body" }, titleRow(ids, "trash", title, "danger"), h("p", { class: "modal-text", id: ids.desc, text }), this.msg),
          h("div", { class: "modal-foot" }, h("div", { class: "actions" }, this.cancelBtn, this.okBtn)),
        ];
      },
    });
  }

  open(opener) {
    setMessage(this.msg, "");
    // The safe choice has the focus.
    this.modal.open(opener, this.cancelBtn);
  }

  async confirm() {
    const done = busy(this.okBtn);
    this.cancelBtn.disabled = true;
    this.modal.busy = true;
    try {
      await this.action();
      this.modal.busy = false;
      this.cancelBtn.disabled = false;
      done();
      this.modal.close();
    } catch (e) {
      this.modal.busy = false;
      this.cancelBtn.disabled = false;
      done();
      setMessage(this.msg, e.message);
    }
  }
}
