package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// env is what TestMain finds once: the built binary and the browser. It is
// written before any test runs and only read afterwards.
var env struct {
	bin      string
	chromium string
	skip     string // why the tests skip, "" when they run
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	env.chromium = findChromium()
	if env.chromium == "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: chromium is not installed, and CI=true: the browser tests must run in CI")
			return 1
		}
		env.skip = "chromium is not installed (apt-get install chromium); set CI=true to make this a failure"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "dashboard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	env.bin = filepath.Join(dir, "dashboard")
	// The binary a pod runs: static, no race detector (the browser is the
	// system under test here; the server's own tests run with -race).
	cmd := exec.Command("go", "build", "-o", env.bin, "dashboard")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build the dashboard: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func findChromium() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needBrowser skips the test when there is no browser to drive.
func needBrowser(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

// dashboard is one run of the binary on a workspace; it can be stopped and
// started again on the same address.
type dashboard struct {
	t         *testing.T
	workspace string
	password  string
	args      []string
	env       []string
	addr      string

	cmd  *exec.Cmd
	done chan error
	logs *syncBuffer
}

type dashOptions struct {
	presets  string // presets.yaml content
	password string
	env      []string               // extra environment, e.g. HF_TOKEN=… (a PATH here replaces the test's)
	setup    func(workspace string) // runs before the first start
	// workspace, when set, is another dashboard's: this one shares it (and
	// its presets) as a second pod on the same volume would.
	workspace string
	args      []string // extra flags, e.g. --node-name
	comfyui   string   // ComfyUI's URL; "" turns watching off
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func startDashboard(t *testing.T, hf *fakeHF, o dashOptions) *dashboard {
	t.Helper()
	ws := o.workspace
	if ws == "" {
		ws = t.TempDir()
		if err := os.MkdirAll(filepath.Join(ws, "config"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ws, "config", "presets.yaml"), []byte(o.presets), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if o.setup != nil {
		o.setup(ws)
	}
	d := &dashboard{t: t, workspace: ws, password: o.password, env: o.env, addr: "127.0.0.1:0"}
	d.args = []string{"--workspace", ws, "--comfyui-url", o.comfyui, "--hf-endpoint", hf.srv.URL, "--log-level", "debug"}
	if o.password != "" {
		d.args = append(d.args, "--password", o.password)
	}
	d.args = append(d.args, o.args...)
	d.start()
	t.Cleanup(func() {
		if d.cmd != nil && d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("dashboard log:\n%s", d.logs.String())
		}
	})
	return d
}

// start runs the binary; after the first start it reuses the same address.
func (d *dashboard) start() {
	d.t.Helper()
	args := append(append([]string{}, d.args...), "--addr", d.addr)
	cmd := exec.Command(env.bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.workspace}, d.env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if d.logs == nil {
		d.logs = &syncBuffer{}
	}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd, d.done = cmd, make(chan error, 1)
	addr := make(chan string, 1)
	logs, done := d.logs, d.done
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logs.WriteString(line + "\n")
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		done <- cmd.Wait()
	}()
	select {
	case d.addr = <-addr:
	case err := <-d.done:
		d.t.Fatalf("dashboard exited at start: %v\n%s", err, d.logs.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		d.t.Fatalf("dashboard did not start listening\n%s", d.logs.String())
	}
}

// stop ends the process the way a pod does (SIGTERM) and waits.
func (d *dashboard) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Fatal("dashboard did not stop within 15 s of SIGTERM")
	}
}

func (d *dashboard) url(path string) string { return "http://" + d.addr + path }

// api calls the HTTP API as a script would (Bearer password when one is set).
func (d *dashboard) api(method, path string, body any) (int, []byte) {
	d.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			d.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, d.url(path), rd)
	if err != nil {
		d.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if d.password != "" {
		req.Header.Set("Authorization", "Bearer "+d.password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// mustAPI is api that fails the test on an unexpected status.
func (d *dashboard) mustAPI(method, path string, body any, want int, out any) {
	d.t.Helper()
	code, raw := d.api(method, path, body)
	if code != want {
		d.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			d.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

func (d *dashboard) addActivity(typ, status, title, subtitle string, details any) {
	d.t.Helper()
	body := map[string]any{"type": typ, "status": status, "title": title, "subtitle": subtitle}
	if details != nil {
		body["details"] = details
	}
	d.mustAPI("POST", "/api/activity", body, http.StatusCreated, nil)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) WriteString(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(v)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
