package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"dashboard/db"
	"dashboard/model"
)

// buildBinary compiles the dashboard once for the tests that run it as a
// process, the way a pod does.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dashboard")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan error
	logs *strings.Builder
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startBinary runs the dashboard on a free port of 127.0.0.1 and waits until it
// listens.
func startBinary(t *testing.T, bin, workspace string) *proc {
	t.Helper()
	return startBinaryWith(t, bin, workspace, nil)
}

// startBinaryWith is startBinary with more flags.
func startBinaryWith(t *testing.T, bin, workspace string, extra []string) *proc {
	t.Helper()
	args := append([]string{"--workspace", workspace, "--addr", "127.0.0.1:0", "--comfyui-url", "", "--hf-endpoint", "http://127.0.0.1:1"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), logs: &strings.Builder{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case p.addr = <-addr:
	case err := <-p.done:
		t.Fatalf("dashboard exited at start: %v\n%s", err, p.logs.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("dashboard did not start listening")
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, raw)
	}
}

// TestRestartKeepsStateAndCleansUp kills the binary and starts it again: the
// settings stay, old activity goes, and unfinished downloads become
// failed/interrupted.
func TestRestartKeepsStateAndCleansUp(t *testing.T) {
	bin := buildBinary(t)
	ws := t.TempDir()
	dbPath := filepath.Join(ws, "data", "dashboard.db")
	ctx := context.Background()

	// Seed: activity from 40 days ago and from now, and a download that
	// was running when the pod died.
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := db.Open(ctx, dbPath, db.Options{Now: func() time.Time { return time.Now().AddDate(0, 0, -40) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.InsertActivity(ctx, model.Activity{Type: "download", Status: "completed", Title: "old one"}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	cur, err := db.Open(ctx, dbPath, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cur.InsertActivity(ctx, model.Activity{Type: "download", Status: "completed", Title: "recent one"}); err != nil {
		t.Fatal(err)
	}
	running, err := cur.StartDownload(ctx, "FLUX_SCHNELL", 3)
	if err != nil {
		t.Fatal(err)
	}
	cur.Close()

	p := startBinary(t, bin, ws)
	base := "http://" + p.addr
	var acts struct{ Activity []model.Activity }
	getJSON(t, base+"/api/activity", &acts)
	if len(acts.Activity) != 2 || acts.Activity[1].Title != "recent one" {
		t.Fatalf("activity after start: %+v", acts.Activity)
	}
	// The interrupted download is closed in the log too, not left "started".
	if a := acts.Activity[0]; a.Type != "download" || a.Status != "failed" || a.Subtitle != "FLUX_SCHNELL" || !strings.Contains(string(a.Details), `"interrupted"`) {
		t.Fatalf("no failed row for the interrupted download: %+v", a)
	}
	var hist struct{ History []model.DownloadRecord }
	getJSON(t, base+"/api/downloads/history", &hist)
	if len(hist.History) != 1 || hist.History[0].ID != running.ID || hist.History[0].Status != "failed" || hist.History[0].ErrorMessage != "interrupted" {
		t.Fatalf("history after start: %+v", hist.History)
	}
	req, _ := http.NewRequest("PATCH", base+"/api/settings", strings.NewReader(`{"theme":"light","activity_retention_days":12}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("patch: %v %v", err, resp)
	}
	resp.Body.Close()

	// Kill it hard, as a pod restart would.
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done

	p = startBinary(t, bin, ws)
	var s struct {
		Theme         string `json:"theme"`
		RetentionDays int    `json:"activity_retention_days"`
	}
	getJSON(t, "http://"+p.addr+"/api/settings", &s)
	if s.Theme != "light" || s.RetentionDays != 12 {
		t.Fatalf("settings after restart: %+v", s)
	}
	st, err := os.Stat(dbPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("db mode: %v %v", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Dir(dbPath)); st.Mode().Perm() != 0o700 {
		t.Fatalf("data folder mode %v", st.Mode())
	}

	// The container's health check is the binary itself.
	if out, err := exec.Command(bin, "healthcheck", p.addr).CombinedOutput(); err != nil || !strings.Contains(string(out), `"status":"ok"`) {
		t.Fatalf("healthcheck: %v %s", err, out)
	}

	// SIGTERM: a clean exit, well within 10 s.
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10 s of SIGTERM")
	}
	t.Logf("shutdown took %v", time.Since(start))
	if out, err := exec.Command(bin, "healthcheck", p.addr).CombinedOutput(); err == nil {
		t.Fatalf("healthcheck passed with the dashboard stopped: %s", out)
	}
	if !strings.Contains(p.logs.String(), "msg=stopped") {
		t.Fatalf("no orderly stop in the log:\n%s", p.logs.String())
	}
}

// TestRunShutdownClosesClientsAndLeavesNoGoroutines runs the dashboard in
// process, connects a WebSocket, and stops it.
func TestRunShutdownClosesClientsAndLeavesNoGoroutines(t *testing.T) {
	before := len(ours())
	ws := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--workspace", ws, "--addr", "127.0.0.1:0", "--comfyui-url", "", "--hf-endpoint", "http://127.0.0.1:1"},
			envOf(nil), io.Discard, hooks{Ready: func(a string) { ready <- a }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.ReadMessage(); err != nil || !strings.Contains(string(msg), `"type":"snapshot"`) {
		t.Fatalf("first frame %s %v", msg, err)
	}
	cancel()
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("client closed with %v, want 1001", err)
	}
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	http.DefaultClient.CloseIdleConnections()
	// Both a count (a library goroutine the dashboard started) and a look
	// at every stack for the dashboard's own code: goroutines from earlier
	// tests ending meanwhile could hide a leak of the same size from the count.
	deadline := time.Now().Add(5 * time.Second)
	for (len(ours()) > before || len(dashboardGoroutines()) > 0) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := ours(); len(left) > before {
		t.Fatalf("%d goroutines left (had %d):\n%s", len(left), before, strings.Join(left, "\n\n"))
	}
	if left := dashboardGoroutines(); len(left) > 0 {
		t.Fatalf("goroutines of the dashboard's own code left:\n%s", strings.Join(left, "\n\n"))
	}
}

// dashboardGoroutines lists goroutines running the dashboard's code, other
// than tests themselves.
func dashboardGoroutines() []string {
	var out []string
	for _, g := range ours() {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "testing.(*M)") {
			continue
		}
		if strings.Contains(g, "\ndashboard.") || strings.Contains(g, "\ndashboard/") {
			out = append(out, g)
		}
	}
	return out
}

// ours lists the goroutines running, less fasthttp's two that outlive any
// server by design: the process-wide date updater, and the worker-pool
// cleaner that notices the stop only after its 10 s sleep.
func ours() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "fasthttp.updateServerDate") || strings.Contains(g, "fasthttp.(*workerPool).Start.func2") {
			continue
		}
		out = append(out, g)
	}
	return out
}
