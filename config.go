package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"dashboard/db"
	"dashboard/downloader"
	"dashboard/model"
	"dashboard/server"
)

// config is everything the dashboard is told at start.
type config struct {
	Addr                string
	Workspace           string
	WorkspaceReason     string // why this workspace was chosen, for the log
	DB                  string
	Presets             string
	Models              string
	HFEndpoint          string
	HFToken             string
	CivitaiEndpoint     string
	CivitaiToken        string
	ComfyUIURL          string
	Password            string
	RetentionDays       int
	RetentionDaysSet    bool // given by flag or env, so it overrides the saved setting
	DownloadConcurrency int
	DownloadConnections int
	VolumeSize          int64 // bytes; 0: statfs's total
	LogLevel            slog.Level
	NodeName            string // how this dashboard names itself to others sharing the volume
	NodeNameReason      string // where the name came from, for the log
	DBJournal           string // db.JournalAuto, db.JournalWAL or db.JournalDelete
	TrustedProxies      []netip.Prefix
	AllowedHosts        []string
}

// option is one setting: a flag and an environment variable, the flag wins.
type option struct {
	flag, env, def, usage string
}

var options = []option{
	{"addr", "DASHBOARD_ADDR", ":8082", "listen address"},
	{"workspace", "WORKSPACE", "/workspace if it exists, else ./workspace", "root of the pod's network volume"},
	{"db", "DASHBOARD_DB", "$WORKSPACE/data/dashboard.db", "SQLite file"},
	{"presets", "PRESETS_FILE", "$WORKSPACE/config/presets.yaml", "preset definitions"},
	{"models", "MODELS_DIR", "$WORKSPACE/models", "where preset files go"},
	{"hf-endpoint", "HF_ENDPOINT", "https://huggingface.co", "HuggingFace base URL (mirrors, tests)"},
	{"civitai-endpoint", "CIVITAI_ENDPOINT", "https://civitai.com", "Civitai base URL (tests); preset URLs on civitai.com, civitai.green and civitai.red are fetched from it"},
	{"comfyui-url", "COMFYUI_URL", "http://127.0.0.1:8188", "ComfyUI to watch for generations; empty turns watching off"},
	{"password", "DASHBOARD_PASSWORD", "", "when set, every page, API call and WebSocket needs it"},
	{"retention-days", "ACTIVITY_RETENTION_DAYS", strconv.Itoa(model.DefaultRetentionDays), fmt.Sprintf("activity older than this many days is deleted (%d-%d); when given, it replaces the saved setting", model.MinRetentionDays, model.MaxRetentionDays)},
	{"download-concurrency", "DOWNLOAD_CONCURRENCY", "1", "presets installed at the same time (1-8)"},
	{"download-connections", "DOWNLOAD_CONNECTIONS", strconv.Itoa(downloader.DefaultConnections), fmt.Sprintf(
		"connections per file (%d-%d); files under %d MiB and servers that ignore Range use one",
		downloader.MinConnections, downloader.MaxConnections, downloader.SegmentedMinSize>>20)},
	{"volume-size", "VOLUME_SIZE_GB", "", "the volume's real size in GB (10^9 bytes), when the filesystem reports the whole cluster's"},
	{"log-level", "LOG_LEVEL", "info", "debug, info, warn or error"},
	{"node-name", "DASHBOARD_NODE_NAME", "$RUNPOD_POD_ID, else the hostname", "how this dashboard names itself to other dashboards sharing the volume"},
	{"db-journal", "DASHBOARD_DB_JOURNAL", db.JournalAuto, "auto (WAL on a local filesystem, the rollback journal on a network or FUSE one), wal or delete"},
	{"trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated CIDRs (or addresses) whose X-Forwarded-For and X-Forwarded-Host are believed; from anyone else they are ignored"},
	{"allowed-hosts", "DASHBOARD_ALLOWED_HOSTS", "", "more Host names the dashboard answers to, comma-separated (*.example.com for every subdomain); localhost, IP addresses, names without dots, this machine's hostname and *.proxy.runpod.net always work"},
}

// errHelp means --help was asked for; usage has been printed.
var errHelp = flag.ErrHelp

// loadConfig reads flags from args and variables through getenv.
func loadConfig(args []string, env func(string) (string, bool), out io.Writer) (config, error) {
	fs := flag.NewFlagSet("dashboard", flag.ContinueOnError)
	fs.SetOutput(out)
	vals := map[string]*string{}
	for _, o := range options {
		vals[o.flag] = fs.String(o.flag, "", o.usage)
	}
	fs.Usage = func() { usage(out) }
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (every setting is a --flag; see --help)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	get := func(name string) (string, bool) {
		if given[name] {
			return *vals[name], true
		}
		for _, o := range options {
			if o.flag == name {
				if v, ok := lookup(env, o.env); ok {
					return v, true
				}
			}
		}
		return "", false
	}

	var c config
	var ok bool
	if c.Addr, ok = get("addr"); !ok {
		c.Addr = ":8082"
	}
	if c.Workspace, ok = get("workspace"); ok {
		c.WorkspaceReason = "set by --workspace or WORKSPACE"
	} else if st, err := os.Stat("/workspace"); err == nil && st.IsDir() {
		c.Workspace, c.WorkspaceReason = "/workspace", "/workspace exists"
	} else {
		c.Workspace, c.WorkspaceReason = "./workspace", "/workspace does not exist"
	}
	if c.Workspace == "" {
		return config{}, errors.New("the workspace must not be empty")
	}
	abs, err := filepath.Abs(c.Workspace)
	if err != nil {
		return config{}, fmt.Errorf("workspace %q: %w", c.Workspace, err)
	}
	c.Workspace = abs
	pathOr := func(name, def string) string {
		if v, ok := get(name); ok && v != "" {
			return v
		}
		return def
	}
	c.DB = pathOr("db", filepath.Join(c.Workspace, "data", "dashboard.db"))
	c.Presets = pathOr("presets", filepath.Join(c.Workspace, "config", "presets.yaml"))
	c.Models = pathOr("models", filepath.Join(c.Workspace, "models"))
	c.HFEndpoint = strings.TrimRight(pathOr("hf-endpoint", "https://huggingface.co"), "/")
	if u, err := url.Parse(c.HFEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return config{}, fmt.Errorf("hf-endpoint %q is not an http(s) URL", c.HFEndpoint)
	}
	c.CivitaiEndpoint = strings.TrimRight(pathOr("civitai-endpoint", "https://civitai.com"), "/")
	if u, err := url.Parse(c.CivitaiEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return config{}, fmt.Errorf("civitai-endpoint %q is not an http(s) URL", c.CivitaiEndpoint)
	}
	if c.ComfyUIURL, ok = get("comfyui-url"); !ok {
		c.ComfyUIURL = "http://127.0.0.1:8188"
	}
	if c.ComfyUIURL != "" {
		if u, err := url.Parse(c.ComfyUIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return config{}, fmt.Errorf("comfyui-url %q is not an http(s) URL (leave it empty to turn watching off)", c.ComfyUIURL)
		}
	}
	c.Password, _ = get("password")
	hf, _ := env("HF_TOKEN")
	c.HFToken = strings.TrimSpace(hf)
	civitai, _ := env("CIVITAI_TOKEN")
	c.CivitaiToken = strings.TrimSpace(civitai)

	c.RetentionDays = model.DefaultRetentionDays
	if v, ok := get("retention-days"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || !model.ValidRetentionDays(n) {
			return config{}, fmt.Errorf("retention-days must be a whole number from %d to %d, not %q", model.MinRetentionDays, model.MaxRetentionDays, v)
		}
		c.RetentionDays, c.RetentionDaysSet = n, true
	}
	c.DownloadConcurrency = 1
	if v, ok := get("download-concurrency"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 8 {
			return config{}, fmt.Errorf("download-concurrency must be a whole number from 1 to 8, not %q", v)
		}
		c.DownloadConcurrency = n
	}
	c.DownloadConnections = downloader.DefaultConnections
	if v, ok := get("download-connections"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < downloader.MinConnections || n > downloader.MaxConnections {
			return config{}, fmt.Errorf("download-connections must be a whole number from %d to %d, not %q",
				downloader.MinConnections, downloader.MaxConnections, v)
		}
		c.DownloadConnections = n
	}
	if v, ok := get("trusted-proxies"); ok {
		if c.TrustedProxies, err = server.ParsePrefixes(v); err != nil {
			return config{}, fmt.Errorf("trusted-proxies: %w", err)
		}
	}
	if v, ok := get("allowed-hosts"); ok {
		for _, h := range strings.Split(v, ",") {
			h = strings.ToLower(strings.TrimSpace(h))
			if h == "" {
				continue
			}
			if !validHostPattern(h) {
				return config{}, fmt.Errorf("allowed-hosts: %q is not a host name (like dash.example.com or *.example.com, without scheme, port or path)", h)
			}
			c.AllowedHosts = append(c.AllowedHosts, h)
		}
	}
	if v, ok := get("volume-size"); ok {
		gb, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(gb) || gb <= 0 || gb > 1e9 {
			return config{}, fmt.Errorf("volume-size must be the volume's size in GB, a number above 0 such as 100 or 1.5, not %q", v)
		}
		c.VolumeSize = int64(math.Round(gb * 1e9))
	}
	if v, ok := get("log-level"); ok {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return config{}, fmt.Errorf("log-level must be debug, info, warn or error, not %q", v)
		}
	}
	if c.NodeName, c.NodeNameReason, err = nodeName(get, env); err != nil {
		return config{}, err
	}
	if c.DBJournal, ok = get("db-journal"); !ok {
		c.DBJournal = db.JournalAuto
	}
	if !db.ValidJournal(c.DBJournal) {
		return config{}, fmt.Errorf("db-journal must be auto, wal or delete, not %q", c.DBJournal)
	}
	return c, nil
}

// nodeName is --node-name, else RUNPOD_POD_ID (unique per pod), else the
// hostname (a container's, unique per container), and where it came from.
func nodeName(get func(string) (string, bool), env func(string) (string, bool)) (name, reason string, err error) {
	if name, ok := get("node-name"); ok {
		name, reason = strings.TrimSpace(name), "set by --node-name or DASHBOARD_NODE_NAME"
		if name == "" || len(name) > 253 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return "", "", fmt.Errorf("node-name must be 1 to 253 printable characters, not %q", name)
		}
		return name, reason, nil
	}
	if id, _ := env("RUNPOD_POD_ID"); strings.TrimSpace(id) != "" {
		return strings.TrimSpace(id), "RUNPOD_POD_ID", nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "", "", fmt.Errorf("no node name: set --node-name or DASHBOARD_NODE_NAME (the hostname is unknown: %v)", err)
	}
	return host, "the hostname", nil
}

// validHostPattern accepts a host name, optionally with a leading "*." for
// every name under it.
func validHostPattern(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return !strings.HasPrefix(h, ".") && !strings.Contains(h, "..")
}

// lookup treats a variable set to "" as set only where empty has a meaning
// (COMFYUI_URL="" turns watching off; DASHBOARD_PASSWORD="" is no password).
func lookup(env func(string) (string, bool), name string) (string, bool) {
	v, set := env(name)
	if v != "" || (set && name == "COMFYUI_URL") {
		return v, true
	}
	return "", false
}

func usage(out io.Writer) {
	fmt.Fprintf(out, "dashboard: live model downloads, activity and settings for a ComfyUI pod.\n\nUsage: dashboard [flags]\n\nEvery flag can also be set by its environment variable; the flag wins.\n\n")
	for _, o := range options {
		def := o.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(out, "  --%-22s %-24s %s\n  %-24s %-24s default: %s\n", o.flag, o.env, o.usage, "", "", def)
	}
	fmt.Fprintf(out, "  %-24s %-24s %s\n", "", "HF_TOKEN", "HuggingFace token used when none is saved in settings")
	fmt.Fprintf(out, "  %-24s %-24s %s\n", "", "CIVITAI_TOKEN", "Civitai token used when none is saved in settings")
}
