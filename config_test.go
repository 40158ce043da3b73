package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestConfigFlagWinsOverEnv(t *testing.T) {
	ws := t.TempDir()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want func(c config) string // "" when right
	}{
		{"defaults under the workspace", []string{"--workspace", ws}, nil, func(c config) string {
			if c.Addr != ":8082" || c.DB != filepath.Join(ws, "data", "dashboard.db") || c.Presets != filepath.Join(ws, "config", "presets.yaml") ||
				c.Models != filepath.Join(ws, "models") || c.HFEndpoint != "https://huggingface.co" || c.ComfyUIURL != "http://127.0.0.1:8188" ||
				c.RetentionDays != 30 || c.RetentionDaysSet || c.Password != "" || c.DownloadConcurrency != 1 || c.DownloadConnections != 8 || c.VolumeSize != 0 ||
				c.CivitaiEndpoint != "https://civitai.com" || c.CivitaiToken != "" {
				return "wrong defaults"
			}
			return ""
		}},
		{"env used", nil, map[string]string{"WORKSPACE": ws, "DASHBOARD_ADDR": "127.0.0.1:9", "ACTIVITY_RETENTION_DAYS": "7", "HF_TOKEN": " hf_abc ", "DASHBOARD_PASSWORD": "pw", "HF_ENDPOINT": "http://mirror.local/", "DOWNLOAD_CONNECTIONS": "32"}, func(c config) string {
			if c.Workspace != ws || c.Addr != "127.0.0.1:9" || c.RetentionDays != 7 || !c.RetentionDaysSet || c.HFToken != "hf_abc" || c.Password != "pw" || c.HFEndpoint != "http://mirror.local" || c.DownloadConnections != 32 {
				return "env not applied"
			}
			return ""
		}},
		{"flag wins", []string{"--addr", ":1234", "--workspace", ws, "--retention-days", "9", "--comfyui-url", "http://c:1", "--download-connections", "1"}, map[string]string{"WORKSPACE": "/elsewhere", "DASHBOARD_ADDR": ":9999", "ACTIVITY_RETENTION_DAYS": "7", "COMFYUI_URL": "http://x:2", "DOWNLOAD_CONNECTIONS": "16"}, func(c config) string {
			if c.Addr != ":1234" || c.Workspace != ws || c.RetentionDays != 9 || c.ComfyUIURL != "http://c:1" || c.DownloadConnections != 1 {
				return "flag did not win"
			}
			return ""
		}},
		{"explicit paths", []string{"--workspace", ws, "--db", "/tmp/x.db", "--presets", "/tmp/p.yaml", "--models", "/tmp/m"}, nil, func(c config) string {
			if c.DB != "/tmp/x.db" || c.Presets != "/tmp/p.yaml" || c.Models != "/tmp/m" {
				return "paths not applied"
			}
			return ""
		}},
		{"node name and journal", []string{"--workspace", ws}, map[string]string{"RUNPOD_POD_ID": "abc123", "DASHBOARD_DB_JOURNAL": "delete"}, func(c config) string {
			if c.NodeName != "abc123" || c.NodeNameReason != "RUNPOD_POD_ID" || c.DBJournal != "delete" {
				return "RUNPOD_POD_ID or DASHBOARD_DB_JOURNAL not used"
			}
			return ""
		}},
		{"node name flag wins", []string{"--workspace", ws, "--node-name", "pod-a", "--db-journal", "wal"}, map[string]string{"RUNPOD_POD_ID": "abc123", "DASHBOARD_NODE_NAME": "pod-b", "DASHBOARD_DB_JOURNAL": "delete"}, func(c config) string {
			if c.NodeName != "pod-a" || c.DBJournal != "wal" {
				return "flags did not win"
			}
			return ""
		}},
		{"node name defaults to the hostname", []string{"--workspace", ws}, nil, func(c config) string {
			if host, _ := os.Hostname(); c.NodeName != host || c.NodeNameReason != "the hostname" || c.DBJournal != "auto" {
				return "not the hostname and auto"
			}
			return ""
		}},
		{"hosts and proxies", []string{"--workspace", ws, "--allowed-hosts", "Dash.Example.com, *.corp.example"}, map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7, ::1", "DASHBOARD_ALLOWED_HOSTS": "ignored.example"}, func(c config) string {
			if fmt.Sprint(c.AllowedHosts) != "[dash.example.com *.corp.example]" || fmt.Sprint(c.TrustedProxies) != "[10.0.0.0/8 192.168.1.7/32 ::1/128]" {
				return "hosts or proxies not applied"
			}
			return ""
		}},
		{"VOLUME_SIZE_GB in decimal gigabytes", []string{"--workspace", ws}, map[string]string{"VOLUME_SIZE_GB": "1.5"}, func(c config) string {
			if c.VolumeSize != 1_500_000_000 {
				return "volume size not applied"
			}
			return ""
		}},
		{"--volume-size wins", []string{"--workspace", ws, "--volume-size", "200"}, map[string]string{"VOLUME_SIZE_GB": "50"}, func(c config) string {
			if c.VolumeSize != 200e9 {
				return "the flag did not win"
			}
			return ""
		}},
		{"Civitai from the environment", []string{"--workspace", ws}, map[string]string{"CIVITAI_TOKEN": " abc123 ", "CIVITAI_ENDPOINT": "http://civitai.local:9/"}, func(c config) string {
			if c.CivitaiToken != "abc123" || c.CivitaiEndpoint != "http://civitai.local:9" {
				return "CIVITAI_TOKEN or CIVITAI_ENDPOINT not applied"
			}
			return ""
		}},
		{"--civitai-endpoint wins", []string{"--workspace", ws, "--civitai-endpoint", "http://flag.local"}, map[string]string{"CIVITAI_ENDPOINT": "http://env.local"}, func(c config) string {
			if c.CivitaiEndpoint != "http://flag.local" {
				return "the flag did not win"
			}
			return ""
		}},
		{"empty COMFYUI_URL turns watching off", []string{"--workspace", ws}, map[string]string{"COMFYUI_URL": ""}, func(c config) string {
			if c.ComfyUIURL != "" {
				return "watcher not off"
			}
			return ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.args, envOf(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.want(c); msg != "" {
				t.Fatalf("%s: %+v", msg, c)
			}
		})
	}
}

func TestConfigWorkspaceFallback(t *testing.T) {
	c, err := loadConfig(nil, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	// Decided from the disk, not from what loadConfig says it saw.
	want := "/workspace"
	if st, err := os.Stat("/workspace"); err != nil || !st.IsDir() {
		want, _ = filepath.Abs("./workspace")
	}
	if c.Workspace != want || c.WorkspaceReason == "" {
		t.Fatalf("workspace %q (%s), want %q", c.Workspace, c.WorkspaceReason, want)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"--retention-days", "0"},
		{"--retention-days", "many"},
		{"--download-concurrency", "0"},
		{"--download-connections", "0"},
		{"--download-connections", "33"},
		{"--download-connections", "eight"},
		{"--hf-endpoint", "ftp://x"},
		{"--civitai-endpoint", "civitai.com"},
		{"--comfyui-url", "not a url"},
		{"--log-level", "loud"},
		{"--db-journal", "memory"},
		{"--node-name", " "},
		{"--node-name", "a\nb"},
		{"--trusted-proxies", "10.0.0.0/33"},
		{"--trusted-proxies", "proxy.internal"},
		{"--allowed-hosts", "https://dash.example.com"},
		{"--allowed-hosts", "dash.example.com:8082"},
		{"--volume-size", "0"},
		{"--volume-size", "-5"},
		{"--volume-size", "100GB"},
		{"--volume-size", "NaN"},
		{"--nope"},
		{"extra"},
	} {
		if _, err := loadConfig(append([]string{"--workspace", t.TempDir()}, args...), envOf(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := loadConfig([]string{"--help"}, envOf(nil), &out)
	if !errors.Is(err, errHelp) {
		t.Fatalf("err = %v", err)
	}
	// The contract's settings, written out here rather than taken from the
	// table --help prints, so a setting read elsewhere cannot go unlisted.
	for _, want := range []string{
		"--addr", "DASHBOARD_ADDR", "--workspace", "WORKSPACE", "--db", "DASHBOARD_DB",
		"--presets", "PRESETS_FILE", "--models", "MODELS_DIR", "--hf-endpoint", "HF_ENDPOINT",
		"HF_TOKEN", "--comfyui-url", "COMFYUI_URL", "--password", "DASHBOARD_PASSWORD",
		"--retention-days", "ACTIVITY_RETENTION_DAYS", "CIVITAI_TOKEN", "--civitai-endpoint", "CIVITAI_ENDPOINT",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
	for _, o := range options {
		if !strings.Contains(out.String(), "--"+o.flag) || !strings.Contains(out.String(), o.env) {
			t.Errorf("--help lacks %s / %s", o.flag, o.env)
		}
	}
	for _, def := range []string{":8082", "https://huggingface.co", "http://127.0.0.1:8188", "$WORKSPACE/data/dashboard.db", "HF_TOKEN", "https://civitai.com"} {
		if !strings.Contains(out.String(), def) {
			t.Errorf("--help lacks default %s", def)
		}
	}
}
