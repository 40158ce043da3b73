// Small DOM helpers: build elements node by node (so nothing from the
// server is ever parsed as markup) and draw the few icons the pages use.

const SVG_NS = "http://www.w3.org/2000/svg";

// h("button", {class: "btn", type: "button", onclick: fn}, "Text", child…)
// Props starting with "on" become listeners; "text" sets textContent;
// false/null/undefined props and children are skipped.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === false || v === null || v === undefined) {
        continue;
      }
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else if (k === "class") {
        el.className = v;
      } else if (k === "text") {
        el.textContent = v;
      } else if (k === "dataset") {
        Object.assign(el.dataset, v);
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    if (Array.isArray(c)) {
      append(el, c);
    } else if (c instanceof Node) {
      el.append(c);
    } else {
      el.append(String(c));
    }
  }
}

// Icon paths on a 24×24 grid, drawn with strokes.
const ICONS = {
  lock: ["M6 11h12v9H6z", "M8.5 11V8a3.5 3.5 0 0 1 7 0v3"],
  download: ["M12 4v11", "M7.5 10.5 12 15l4.5-4.5", "M5 19h14"],
  check: ["M5 12.5l4.5 4.5L19 7.5"],
  x: ["M6 6l12 12", "M18 6 6 18"],
  alert: ["M12 4 2.8 19.5h18.4z", "M12 10v4.5", "M12 17.3v.2"],
  info: ["M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z", "M12 11v5.5", "M12 7.8v.2"],
  clock: ["M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z", "M12 7.5V12l3 2"],
  refresh: ["M19.5 8A8 8 0 1 0 20 13", "M20 4v4.5h-4.5"],
  sparkle: ["M12 3.5l1.9 5.1 5.1 1.9-5.1 1.9L12 17.5l-1.9-5.1L5 10.5l5.1-1.9z", "M18.5 16.5l.8 2 2 .8-2 .8-.8 2-.8-2-2-.8 2-.8z"],
  trash: ["M4.5 7h15", "M9.5 7V4.5h5V7", "M6.5 7l1 12.5h9l1-12.5"],
  inbox: ["M3.5 13.5 6 5h12l2.5 8.5", "M3.5 13.5V19h17v-5.5h-5.2a3.3 3.3 0 0 1-6.6 0z"],
  key: ["M14.5 4a5.5 5.5 0 1 1-4.9 8L4 17.5V20h3.5v-2h2v-2h2l.9-.9A5.5 5.5 0 0 1 14.5 4z", "M16 8.2v.2"],
  external: ["M14 4h6v6", "M20 4l-9 9", "M18 14v5H5V6h5"],
  search: ["M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13z", "M15.5 15.5 20 20"],
  box: ["M12 3 20 7.5v9L12 21l-8-4.5v-9z", "M4 7.5l8 4.5 8-4.5", "M12 12v9"],
  sun: ["M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z", "M12 2.5v2", "M12 19.5v2", "M2.5 12h2", "M19.5 12h2", "M5.3 5.3l1.4 1.4", "M17.3 17.3l1.4 1.4", "M5.3 18.7l1.4-1.4", "M17.3 6.7l1.4-1.4"],
  moon: ["M19.5 14.5A8 8 0 0 1 9.5 4.5a8 8 0 1 0 10 10z"],
  logout: ["M9 20H5V4h4", "M16 16.5 20.5 12 16 7.5", "M20.5 12H9.5"],
};

export function icon(name, cls = "") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  if (cls) {
    svg.setAttribute("class", cls);
  }
  for (const d of ICONS[name] || []) {
    const p = document.createElementNS(SVG_NS, "path");
    p.setAttribute("d", d);
    svg.append(p);
  }
  return svg;
}

// A <time> whose text the shell refreshes ("5 minutes ago" keeps moving).
export function timeEl(iso, format, title, cls) {
  const el = h("time", { class: cls, datetime: iso, "data-relative": "", title: title(iso) });
  el.textContent = format(iso);
  return el;
}

// setMessage fills an aria-live message element; kind is error, success or info.
export function setMessage(el, text, kind = "error") {
  el.textContent = text || "";
  if (text) {
    el.dataset.kind = kind;
  } else {
    delete el.dataset.kind;
  }
}

// busy marks a button as working and disables it; returns a function that
// restores it.
export function busy(btn, label) {
  const old = [...btn.childNodes];
  const wasDisabled = btn.disabled;
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  if (label) {
    btn.textContent = label;
  }
  return () => {
    btn.removeAttribute("aria-busy");
    btn.disabled = wasDisabled;
    if (label) {
      btn.replaceChildren(...old);
    }
  };
}

export function clear(el) {
  el.replaceChildren();
}

// reconcile makes parent's children exactly nodes, in order, moving only the
// nodes that are out of place (a moved node loses the focus).
export function reconcile(parent, nodes) {
  const want = new Set(nodes);
  for (const child of [...parent.children]) {
    if (!want.has(child)) {
      child.remove();
    }
  }
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) {
      parent.insertBefore(node, parent.children[i] || null);
    }
  });
}
