// Sizes, speeds and times the way people read them. Pure functions, so node's
// test runner checks them (ui/jstest/format.test.mjs).

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

// formatBytes uses decimal units, like HuggingFace and the presets file:
// 4_800_000_000 → "4.8 GB". One decimal below 100, none above.
export function formatBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
    return "—";
  }
  if (n < 1000) {
    return `${Math.round(n)} B`;
  }
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  // 999.96 MB rounds to "1000 MB": move it up a unit instead.
  if (Math.round(v * 10) / 10 >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  const text = v >= 100 ? String(Math.round(v)) : v.toFixed(1);
  return `${text} ${UNITS[i]}`;
}

// formatMemory uses binary units, as memory is sold and as nvidia-smi
// counts it: 85_899_345_920 → "80.0 GiB" (an "80GB" GPU reads 80, not 85.9).
// One decimal below 100, none above.
export function formatMemory(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
    return "—";
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) {
    return `${Math.round(v)} B`;
  }
  if (Math.round(v * 10) / 10 >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

// formatSpeed: 12_300_000 → "12.3 MB/s"; nothing moving → "—".
export function formatSpeed(bps) {
  if (typeof bps !== "number" || !Number.isFinite(bps) || bps <= 0) {
    return "—";
  }
  return `${formatBytes(bps)}/s`;
}

// formatDuration: 45 → "45 s", 185 → "4 min", 4500 → "1 h 15 min",
// 200000 → "2 days 8 h". Minutes round up so a running ETA never reads 0.
export function formatDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    return "—";
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.ceil(s / 60)} min`;
  }
  if (s < 86400) {
    const h = Math.floor(s / 3600);
    const m = Math.round((s % 3600) / 60);
    if (m === 60) {
      return `${h + 1} h`;
    }
    return m ? `${h} h ${m} min` : `${h} h`;
  }
  const d = Math.floor(s / 86400);
  const h = Math.round((s % 86400) / 3600);
  const days = d === 1 ? "1 day" : `${d} days`;
  return h && h < 24 ? `${days} ${h} h` : days;
}

// formatETA: 180 → "3 min left"; unknown → "".
export function formatETA(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) {
    return "";
  }
  if (seconds < 1) {
    return "almost done";
  }
  return `${formatDuration(seconds)} left`;
}

// percent of done in total, floored so 100 % means finished.
export function percent(done, total) {
  if (!(total > 0) || !(done > 0)) {
    return 0;
  }
  return Math.max(0, Math.min(100, Math.floor((done / total) * 100)));
}

const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

// Each step: below this many seconds, count in this unit.
const STEPS = [
  [3600, 60, "minute"],
  [86400, 3600, "hour"],
  [86400 * 7, 86400, "day"],
  [86400 * 30, 86400 * 7, "week"],
];

// formatRelative: "just now", "5 minutes ago", "2 hours ago", "yesterday",
// "3 weeks ago"; older than a month, the date.
export function formatRelative(when, now = Date.now()) {
  const t = toMillis(when);
  if (t === null) {
    return "—";
  }
  const diff = Math.round((now - t) / 1000);
  if (diff < 45) {
    return "just now";
  }
  for (const [limit, size, unit] of STEPS) {
    const n = Math.max(1, Math.round(diff / size));
    // 59.6 minutes reads better as "1 hour ago" than "60 minutes ago".
    if (diff < limit && n * size < limit) {
      return rtf.format(-n, unit);
    }
  }
  return formatDate(t);
}

const dateFmt = new Intl.DateTimeFormat("en", { day: "numeric", month: "short", year: "numeric" });
const dateTimeFmt = new Intl.DateTimeFormat("en", {
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function formatDate(when) {
  const t = toMillis(when);
  return t === null ? "—" : dateFmt.format(t);
}

// formatDateTime is the full local time, for tooltips.
export function formatDateTime(when) {
  const t = toMillis(when);
  return t === null ? "" : dateTimeFmt.format(t);
}

function toMillis(when) {
  if (when instanceof Date) {
    return Number.isNaN(when.getTime()) ? null : when.getTime();
  }
  if (typeof when === "number") {
    return Number.isFinite(when) ? when : null;
  }
  if (typeof when === "string" && when) {
    const t = Date.parse(when);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

// sentence makes a server message read as a sentence: capital first letter,
// full stop at the end.
export function sentence(text) {
  const s = String(text ?? "").trim();
  if (!s) {
    return "";
  }
  // A message that starts with a file's path ("loras/x.safetensors: not
  // found…") keeps it as it is: a capital would name another file.
  const word = s.split(/[\s:]/, 1)[0];
  const first = /[/\\._]/.test(word) ? s : s[0].toUpperCase() + s.slice(1);
  return /[.!?…)]$/.test(first) ? first : `${first}.`;
}

// downloadStats is the line of figures under a download's progress bar, as
// [{stat, text}]: bytes, then what it is doing (speed and ETA while bytes
// arrive, "Verifying…" while the checksum catches up), the connections
// when there is more than one, and the files. A verify hashes all along:
// its speed and ETA are the hashing's.
export function downloadStats(d) {
  const out = [];
  if (d.bytes_total > 0) {
    out.push({ stat: "bytes", text: `${formatBytes(d.bytes_done)} of ${formatBytes(d.bytes_total)}` });
  } else if (d.bytes_done > 0) {
    out.push({ stat: "bytes", text: formatBytes(d.bytes_done) });
  }
  if (d.status === "downloading") {
    if (d.phase === "verifying" && d.kind !== "verify") {
      out.push({ stat: "phase", text: "Verifying…" });
    } else {
      out.push({ stat: "speed", text: formatSpeed(d.speed_bps) });
      const eta = formatETA(d.eta_seconds ?? NaN);
      if (eta) {
        out.push({ stat: "eta", text: eta });
      }
    }
    if (d.connections > 1) {
      out.push({ stat: "connections", text: `${d.connections} connections` });
    }
  } else if (d.status === "queued") {
    out.push({ stat: "queue", text: "Waiting in the queue" });
  }
  if (d.files_total > 0) {
    out.push({ stat: "files", text: `${d.files_completed} of ${d.files_total} ${d.files_total === 1 ? "file" : "files"}` });
  }
  return out;
}
