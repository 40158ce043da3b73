// The Remove confirmation: before a preset's files are deleted it says how
// much space comes back, which files go, and which shared files stay
// because other installed presets use them. The server works that out
// (POST …/uninstall?dry_run=1) with the same rules the removal follows.

import { h, icon, setMessage, busy } from "./dom.js";
import { post } from "./api.js";
import { Modal } from "./dialogs.js";
import { formatBytes } from "./format.js";

export class RemoveModal {
  // names(id) gives a preset's name for the "used by" lists; done(preset,
  // answer) hears of a removal that went through.
  constructor({ names, done }) {
    this.names = names;
    this.done = done;
    this.preset = null;
    this.seq = 0;
    this.modal = new Modal({
      id: "remove-modal",
      content: (ids) => {
        this.text = h("p", { class: "modal-text", id: ids.desc });
        this.goneList = h("ul", { class: "remove-list", id: "remove-deleted" });
        this.gone = h("div", { class: "remove-group" }, h("p", { class: "remove-head", text: "Deleted:" }), this.goneList);
        this.keptList = h("ul", { class: "remove-list", id: "remove-kept" });
        this.kept = h("div", { class: "remove-group" }, h("p", { class: "remove-head", text: "Shared files that stay:" }), this.keptList);
        this.msg = h("p", { class: "msg", id: "remove-msg", role: "status", "aria-live": "polite" });
        this.cancelBtn = h("button", { type: "button", class: "btn", id: "remove-cancel", onclick: () => this.modal.close() }, "Cancel");
        this.okBtn = h("button", { type: "button", class: "btn btn-danger-solid", id: "remove-confirm", onclick: () => this.confirm() }, icon("trash", "btn-icon"), "Remove");
        return [
          h(
            "div",
            { class: "modal-body" },
            h("h2", { class: "modal-title", id: ids.title }, h("span", { class: "modal-title-icon", "data-tone": "danger" }, icon("trash")), h("span", { id: "remove-title" })),
            this.text,
            this.gone,
            this.kept,
            this.msg,
          ),
          // Only the writer removes: read-only mode disables the button here too.
          h("div", { class: "modal-foot" }, h("div", { class: "actions" }, this.cancelBtn, h("fieldset", { class: "contents", "data-needs-writer": true }, this.okBtn))),
        ];
      },
    });
    this.title = this.modal.el.querySelector("#remove-title");
  }

  // open asks about removing preset p; the dry run fills the dialog in.
  async open(p, opener) {
    this.preset = p;
    const seq = ++this.seq;
    this.title.textContent = `Remove ${p.name || p.id}?`;
    this.text.textContent = "Working out what removing it frees…";
    this.show(this.gone, this.goneList, []);
    this.show(this.kept, this.keptList, []);
    setMessage(this.msg, "");
    this.okBtn.disabled = true;
    this.modal.open(opener, this.cancelBtn);
    try {
      const plan = await post(`/api/presets/${encodeURIComponent(p.id)}/uninstall?dry_run=1`);
      if (seq === this.seq && this.modal.isOpen) {
        this.describe(plan);
      }
    } catch (e) {
      if (seq === this.seq) {
        this.text.textContent = "The dashboard could not tell what removing it would free.";
        setMessage(this.msg, e.message);
      }
    }
  }

  describe(plan) {
    const name = this.preset.name || this.preset.id;
    const deleted = plan.deleted || [];
    const kept = plan.kept || [];
    if (deleted.length === 0 && plan.freed_bytes === 0 && kept.length > 0) {
      this.text.textContent = `Nothing of ${name} would be deleted: every file it has is used by another installed preset, so it still shows as installed.`;
    } else if (deleted.length === 0 && plan.freed_bytes === 0) {
      this.text.textContent = `${name} has nothing on the volume to remove.`;
    } else {
      const files = deleted.length === 1 ? "1 file" : `${deleted.length} files`;
      this.text.replaceChildren(
        `Removing ${name} deletes ${deleted.length ? files : "its partial downloads"} and frees `,
        h("strong", { id: "remove-freed", text: formatBytes(plan.freed_bytes) }),
        " on the volume. Installing it again downloads them again.",
      );
    }
    this.show(this.gone, this.goneList, deleted.map((path) => h("li", { class: "mono", title: path, text: path })));
    this.show(
      this.kept,
      this.keptList,
      kept.map((k) =>
        h(
          "li",
          { "data-path": k.path },
          h("span", { class: "mono", title: k.path, text: k.path }),
          h("span", { class: "muted small", text: ` used by ${(k.used_by || []).map((id) => this.names(id)).join(", ")}` }),
        ),
      ),
    );
    this.okBtn.disabled = deleted.length === 0 && plan.freed_bytes === 0;
  }

  show(group, list, items) {
    list.replaceChildren(...items);
    group.hidden = items.length === 0;
  }

  async confirm() {
    const p = this.preset;
    if (!p) {
      return;
    }
    const done = busy(this.okBtn, "Removing…");
    this.cancelBtn.disabled = true;
    this.modal.busy = true;
    try {
      // The presets frame shows the new state in every tab.
      const res = await post(`/api/presets/${encodeURIComponent(p.id)}/uninstall`);
      this.modal.busy = false;
      this.cancelBtn.disabled = false;
      done();
      this.modal.close();
      this.done(p, res);
    } catch (e) {
      this.modal.busy = false;
      this.cancelBtn.disabled = false;
      done();
      setMessage(this.msg, e.message);
    }
  }
}
