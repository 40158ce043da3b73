// The pod at a glance, on Home: the volume and its model folders, the GPUs,
// memory and CPU, and ComfyUI's queue. Every "system" frame (one every 5 s
// while the page is open) updates the same nodes, so an open folder list
// stays open and the bars move instead of redrawing.

import { h } from "./dom.js";
import { formatBytes, formatMemory } from "./format.js";
import { volumeTaken } from "./state.js";

// meter is a bar of used out of total that turns amber above 75 % and red
// above 90 %.
function meter(label) {
  const fill = h("div", { class: "progress-fill" });
  const bar = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": label }, fill);
  return {
    bar,
    set(used, total) {
      const p = total > 0 ? Math.min(100, Math.max(0, (used / total) * 100)) : 0;
      fill.style.width = `${p.toFixed(1)}%`;
      bar.setAttribute("aria-valuenow", String(Math.round(p)));
      bar.dataset.tone = p >= 90 ? "danger" : p >= 75 ? "warning" : "info";
    },
  };
}

function tile(name, ...children) {
  return h("div", { class: "sys-tile", "data-tile": name }, ...children);
}

function head(title, ...extra) {
  return h("div", { class: "sys-head" }, h("h3", { text: title }), ...extra);
}

export class PodPanel {
  constructor(container, loading) {
    this.container = container;
    this.loading = loading;
    this.gpuRows = [];
    this.built = false;
  }

  build() {
    // Volume
    this.fsChip = h("span", { class: "chip mono", title: "Filesystem" });
    this.volMeter = meter("Volume used");
    this.volMain = h("p", { class: "sys-main" });
    this.volSub = h("p", { class: "sys-sub" });
    this.foldersSummary = h("summary");
    this.foldersList = h("ul", { class: "sys-folders-list" });
    this.folders = h("details", { class: "sys-folders" }, this.foldersSummary, this.foldersList);
    const volume = tile("volume", head("Volume", this.fsChip), this.volMeter.bar, this.volMain, this.volSub, this.folders);

    // GPUs
    this.gpuCount = h("span", { class: "count" });
    this.gpuList = h("ul", { class: "gpu-list" });
    this.gpuNone = h("p", { class: "sys-sub" }, "No NVIDIA GPU found: nvidia-smi is not available on this pod.");
    const gpus = tile("gpus", head("GPU", this.gpuCount), this.gpuList, this.gpuNone);

    // Memory and CPU
    this.memChip = h("span", { class: "chip", text: "container limit", title: "The container's memory limit (cgroup), not the machine's" });
    this.memMeter = meter("Memory used");
    this.memMain = h("p", { class: "sys-main" });
    this.cpuMeter = meter("CPU busy");
    this.cpuMain = h("p", { class: "sys-main" });
    const mem = tile(
      "memory",
      head("Memory", this.memChip),
      this.memMeter.bar,
      this.memMain,
      h("div", { class: "sys-head sys-head-sub" }, h("h3", { text: "CPU" })),
      this.cpuMeter.bar,
      this.cpuMain,
    );

    // ComfyUI
    this.comfyBadge = h("span", { class: "badge" });
    this.comfyMain = h("p", { class: "sys-main" });
    this.comfySub = h("p", { class: "sys-sub" });
    const comfy = tile("comfyui", head("ComfyUI", this.comfyBadge), this.comfyMain, this.comfySub);

    this.loading.remove();
    this.container.replaceChildren(volume, gpus, mem, comfy);
    this.built = true;
  }

  update(s) {
    if (!s || !s.volume) {
      return;
    }
    if (!this.built) {
      this.build();
    }
    this.showVolume(s.volume, s.models);
    this.showGPUs(s.gpus || []);
    this.showMemory(s.memory, s.cpu);
    this.showComfy(s.comfyui);
  }

  showVolume(v, m) {
    this.fsChip.textContent = v.filesystem || "unknown";
    this.fsChip.hidden = !v.filesystem;
    if (v.total_bytes > 0) {
      this.volMeter.set(volumeTaken(v), v.total_bytes);
      this.volMain.replaceChildren(h("strong", { text: `${formatBytes(v.free_bytes)} free` }), ` of ${formatBytes(v.total_bytes)}`);
    } else {
      this.volMeter.set(0, 0);
      this.volMain.textContent = "The volume's size could not be read.";
    }
    this.volSub.replaceChildren(h("span", { class: "mono", text: v.path }), v.source === "config" ? " · size from VOLUME_SIZE_GB" : "");
    this.volSub.title = v.source === "config" ? "Used is what the models folder holds; the rest of the volume is not counted." : "";

    if (!m || !m.counted_at) {
      this.foldersSummary.textContent = "Models: counting…";
    } else if (!m.folders || m.folders.length === 0) {
      this.foldersSummary.textContent = "Models: none yet";
    } else {
      const files = m.files === 1 ? "1 file" : `${m.files} files`;
      this.foldersSummary.textContent = `Models: ${formatBytes(m.bytes)} in ${files}`;
    }
    const folders = (m && m.folders) || [];
    this.foldersList.replaceChildren(
      ...folders.map((f) =>
        h(
          "li",
          { "data-folder": f.name },
          h("span", { class: "mono path", text: f.name === "." ? "(top level)" : f.name, title: f.name }),
          h("span", { class: "sys-num", text: `${formatBytes(f.bytes)} · ${f.files === 1 ? "1 file" : `${f.files} files`}` }),
        ),
      ),
    );
    this.folders.hidden = false;
  }

  showGPUs(gpus) {
    this.gpuCount.textContent = String(gpus.length);
    this.gpuCount.hidden = gpus.length < 2;
    this.gpuNone.hidden = gpus.length > 0;
    while (this.gpuRows.length > gpus.length) {
      this.gpuRows.pop().li.remove();
    }
    while (this.gpuRows.length < gpus.length) {
      const name = h("span", { class: "gpu-name" });
      const m = meter("GPU memory used");
      const stats = h("p", { class: "sys-sub gpu-stats" });
      const li = h("li", { class: "gpu" }, name, m.bar, stats);
      this.gpuList.append(li);
      this.gpuRows.push({ li, name, m, stats });
    }
    gpus.forEach((g, i) => {
      const row = this.gpuRows[i];
      row.li.dataset.index = String(g.index);
      row.name.textContent = `${g.index} · ${g.name}`;
      row.name.title = g.name;
      row.m.set(g.memory_used_bytes, g.memory_total_bytes);
      row.m.bar.setAttribute("aria-label", `GPU ${g.index} memory used`);
      const parts = [`${formatMemory(g.memory_used_bytes)} of ${formatMemory(g.memory_total_bytes)}`];
      parts.push(g.utilization_percent === null || g.utilization_percent === undefined ? "busy —" : `${g.utilization_percent} % busy`);
      if (g.temperature_c !== null && g.temperature_c !== undefined) {
        parts.push(`${g.temperature_c} °C`);
      }
      // Each figure stays whole; lines break between them.
      row.stats.replaceChildren(...parts.flatMap((p, i) => [i ? " · " : "", h("span", { class: "nowrap", text: p })]));
    });
  }

  showMemory(mem, cpu) {
    if (mem && mem.total_bytes > 0) {
      this.memMeter.set(mem.used_bytes, mem.total_bytes);
      this.memMain.replaceChildren(h("strong", { text: formatMemory(mem.used_bytes) }), " ", h("span", { class: "nowrap", text: `of ${formatMemory(mem.total_bytes)}` }), " used");
    } else {
      this.memMain.textContent = "Not known.";
    }
    this.memChip.hidden = !(mem && mem.source === "cgroup");
    if (cpu && cpu.cores > 0) {
      this.cpuMeter.set(cpu.percent, 100);
      this.cpuMain.replaceChildren(h("strong", { text: `${Math.round(cpu.percent)} %` }), ` of ${cpu.cores === 1 ? "1 core" : `${cpu.cores} cores`}`);
    } else {
      this.cpuMain.textContent = "Not known.";
    }
  }

  showComfy(c) {
    c = c || {};
    if (!c.watching) {
      this.comfyBadge.dataset.tone = "neutral";
      this.comfyBadge.textContent = "Not watched";
      this.comfyMain.textContent = "Generations are not followed.";
      this.comfySub.textContent = "Set COMFYUI_URL to follow ComfyUI's queue.";
    } else if (!c.reachable) {
      this.comfyBadge.dataset.tone = "danger";
      this.comfyBadge.textContent = "Unreachable";
      this.comfyMain.textContent = "ComfyUI is not answering.";
      this.comfySub.textContent = "It may be starting or have stopped; the dashboard keeps trying.";
    } else {
      this.comfyBadge.dataset.tone = c.queue_running > 0 ? "info" : "success";
      this.comfyBadge.textContent = c.queue_running > 0 ? "Generating" : "Idle";
      this.comfyMain.replaceChildren(
        h("span", { class: "nowrap" }, h("strong", { text: String(c.queue_running) }), " running"),
        " · ",
        h("span", { class: "nowrap" }, h("strong", { text: String(c.queue_pending) }), " waiting"),
      );
      this.comfySub.textContent = c.queue_running + c.queue_pending === 0 ? "The queue is empty." : "";
    }
    this.comfySub.hidden = !this.comfySub.textContent;
  }
}
