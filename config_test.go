package main

import (
	"bytes"
	"errors"
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
				c.RetentionDays != 30 || c.RetentionDaysSet || c.Password != "" || c.DownloadConcurrency != 1 || c.VolumeSize != 0 {
				return "wrong defaults"
			}
			return ""
		}},
		{"env used", nil, map[string]string{"WORKSPACE": ws, "DASHBOARD_ADDR": "127.0.0.1:9", "ACTIVITY_RETENTION_DAYS": "7", "HF_TOKEN": " hf_abc ", "DASHBOARD_PASSWORD": "pw", "HF_ENDPOINT": "http://mirror.local/"}, func(c config) string {
			if c.Workspace != ws || c.Addr != "127.0.0.1:9" || c.RetentionDays != 7 || !c.RetentionDaysSet || c.HFToken != "hf_abc" || c.Password != "pw" || c.HFEndpoint != "http://mirror.local" {
				return "env not applied"
			}
			return ""
		}},
		{"flag wins", []string{"--addr", ":1234", "--workspace", ws, "--retention-days", "9", "--comfyui-url", "http://c:1"}, map[string]string{"WORKSPACE": "/elsewhere", "DASHBOARD_ADDR": ":9999", "ACTIVITY_RETENTION_DAYS": "7", "COMFYUI_URL": "http://x:2"}, func(c config) string {
			if c.Addr != ":1234" || c.Workspace != ws || c.RetentionDays != 9 || c.ComfyUIURL != "http://c:1" {
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
		{"--hf-endpoint", "ftp://x"},
		{"--comfyui-url", "not a url"},
		{"--log-level", "loud"},
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
	for _, o := range options {
		if !strings.Contains(out.String(), "--"+o.flag) || !strings.Contains(out.String(), o.env) {
			t.Errorf("--help lacks %s / %s", o.flag, o.env)
		}
	}
	for _, def := range []string{":8082", "https://huggingface.co", "http://127.0.0.1:8188", "$WORKSPACE/data/dashboard.db", "HF_TOKEN"} {
		if !strings.Contains(out.String(), def) {
			t.Errorf("--help lacks default %s", def)
		}
	}
}
