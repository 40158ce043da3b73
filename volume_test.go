package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"dashboard/model"
)

// call sends a request to a running dashboard and returns the status and body.
func call(t *testing.T, p *proc, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+p.addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

type healthAnswer struct {
	Status string  `json:"status"`
	DB     string  `json:"db"`
	Mode   string  `json:"mode"`
	Writer *string `json:"writer"`
}

func health(t *testing.T, p *proc) (int, healthAnswer) {
	t.Helper()
	status, raw := call(t, p, "GET", "/api/health", "")
	var h healthAnswer
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("health: %v: %s", err, raw)
	}
	return status, h
}

func (h healthAnswer) writer() string {
	if h.Writer == nil {
		return ""
	}
	return *h.Writer
}

// postActivity records one row and returns its id, or 0 with the status.
func postActivity(t *testing.T, p *proc, title, details string) (int64, int, []byte) {
	t.Helper()
	body := fmt.Sprintf(`{"type":"download","status":"completed","title":%q}`, title)
	if details != "" {
		body = fmt.Sprintf(`{"type":"download","status":"completed","title":%q,"details":%s}`, title, details)
	}
	status, raw := call(t, p, "POST", "/api/activity", body)
	if status != http.StatusCreated {
		return 0, status, raw
	}
	var a model.Activity
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a.ID, status, raw
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}

func kill(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

func stopProc(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, p.logs.String())
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatal("no exit within 15 s of SIGTERM")
	}
}

// openRaw opens a stopped dashboard's database file the way another tool would.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func scalar(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	var v string
	if err := db.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// checkRows checks the file is sound and holds exactly the rows with ids.
func checkRows(t *testing.T, dbPath string, ids []int64) {
	t.Helper()
	raw := openRaw(t, dbPath)
	if got := scalar(t, raw, `PRAGMA integrity_check`); got != "ok" {
		t.Fatalf("integrity_check = %q", got)
	}
	for _, id := range ids {
		if n := scalar(t, raw, `SELECT count(*) FROM activity WHERE id = ?`, id); n != "1" {
			t.Errorf("row %d, answered 201, is missing", id)
		}
	}
	if n := scalar(t, raw, `SELECT count(*) FROM activity WHERE type = 'download' AND status = 'completed'`); n != fmt.Sprint(len(ids)) {
		t.Errorf("%s rows, but %d writes were answered 201", n, len(ids))
	}
}

// Two dashboards on one workspace on one machine, with the same node name
// (the hostname) as two containers of one pod would have: the second is
// read-only and refuses changes naming the writer; when the first is
// killed it takes over (the lock file tells it the holder is gone, so it
// does not wait out the staleness window) and every committed row is there.
func TestSecondDashboardIsReadOnlyThenTakesOver(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ws := t.TempDir()
	host, _ := os.Hostname()
	a := startBinary(t, bin, ws)
	b := startBinary(t, bin, ws)

	if _, h := health(t, a); h.Mode != "writer" || h.writer() != host || h.DB != "ok" {
		t.Fatalf("first dashboard's health: %+v", h)
	}
	if status, h := health(t, b); status != 200 || h.Mode != "read_only" || h.writer() != host || h.Status != "ok" {
		t.Fatalf("second dashboard's health: %d %+v", status, h)
	}

	var ids []int64
	for i := range 30 {
		id, status, raw := postActivity(t, a, fmt.Sprintf("row %d", i), "")
		if status != http.StatusCreated {
			t.Fatalf("write to the writer: %d %s", status, raw)
		}
		ids = append(ids, id)
	}
	_, status, raw := postActivity(t, b, "refused", "")
	var env struct{ Error model.Error }
	json.Unmarshal(raw, &env)
	if status != http.StatusConflict || env.Error.Code != model.CodeReadOnly || !strings.Contains(env.Error.Message, "the dashboard on "+host) {
		t.Fatalf("write to the read-only dashboard: %d %s", status, raw)
	}
	// It reads what the writer wrote.
	var list struct{ Activity []model.Activity }
	getJSON(t, "http://"+b.addr+"/api/activity?limit=100", &list)
	if len(list.Activity) != 30 {
		t.Fatalf("the read-only dashboard sees %d rows, want 30", len(list.Activity))
	}

	kill(t, a)
	took := waitFor(t, 60*time.Second, "the read-only dashboard takes over", func() bool {
		_, h := health(t, b)
		return h.Mode == "writer"
	})
	t.Logf("took over %v after SIGKILL", took.Round(100*time.Millisecond))
	id, status, raw := postActivity(t, b, "after takeover", "")
	if status != http.StatusCreated {
		t.Fatalf("write after takeover: %d %s", status, raw)
	}
	stopProc(t, b)
	if !strings.Contains(b.logs.String(), "previous dashboard is gone") {
		t.Errorf("the takeover did not use the same-node shortcut:\n%s", b.logs.String())
	}
	checkRows(t, filepath.Join(ws, "data", "dashboard.db"), append(ids, id))
}

// With different node names there is no shortcut: the reader takes over
// once the lease has not changed for 30 s on its own clock, within the
// contract's minute, and nothing committed is lost.
func TestTakeoverAfterTheWriterStopsRenewing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 30 s staleness window")
	}
	t.Parallel()
	bin := buildBinary(t)
	ws := t.TempDir()
	a := startBinaryWith(t, bin, ws, []string{"--node-name", "pod-a"})
	b := startBinaryWith(t, bin, ws, []string{"--node-name", "pod-b"})
	if _, h := health(t, b); h.Mode != "read_only" || h.writer() != "pod-a" {
		t.Fatalf("second dashboard: %+v", h)
	}
	var ids []int64
	for i := range 10 {
		id, status, raw := postActivity(t, a, fmt.Sprintf("row %d", i), "")
		if status != http.StatusCreated {
			t.Fatalf("%d %s", status, raw)
		}
		ids = append(ids, id)
	}
	kill(t, a)
	killed := time.Now()
	waitFor(t, 60*time.Second, "takeover after the lease went stale", func() bool {
		_, h := health(t, b)
		return h.Mode == "writer" && h.writer() == "pod-b"
	})
	took := time.Since(killed)
	t.Logf("took over %v after SIGKILL", took.Round(100*time.Millisecond))
	if took < 25*time.Second {
		t.Errorf("took over after %v: before the lease can have gone stale", took)
	}
	id, status, raw := postActivity(t, b, "after takeover", "")
	if status != http.StatusCreated {
		t.Fatalf("write after takeover: %d %s", status, raw)
	}
	stopProc(t, b)
	checkRows(t, filepath.Join(ws, "data", "dashboard.db"), append(ids, id))
}

// A dashboard killed and started again under the same node name is the
// writer as soon as it listens.
func TestRestartOnTheSameNodeWritesAtOnce(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ws := t.TempDir()
	a := startBinaryWith(t, bin, ws, []string{"--node-name", "pod-a"})
	first, _, _ := postActivity(t, a, "before", "")
	kill(t, a)
	if _, err := os.Stat(filepath.Join(ws, "data", "dashboard.lease")); err != nil {
		t.Fatalf("a killed dashboard's lease should still be there: %v", err)
	}
	a = startBinaryWith(t, bin, ws, []string{"--node-name", "pod-a"})
	if _, h := health(t, a); h.Mode != "writer" {
		t.Fatalf("restarted dashboard: %+v", h)
	}
	second, status, raw := postActivity(t, a, "after", "")
	if status != http.StatusCreated {
		t.Fatalf("first write after the restart: %d %s", status, raw)
	}
	stopProc(t, a)
	// A clean stop gives the lease up.
	if _, err := os.Stat(filepath.Join(ws, "data", "dashboard.lease")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease after SIGTERM: %v", err)
	}
	checkRows(t, filepath.Join(ws, "data", "dashboard.db"), []int64{first, second})
}

// needFUSE skips (or, in CI, fails) when two bindfs mounts cannot be made.
func needFUSE(t *testing.T) {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("bindfs"); err != nil {
		why = "bindfs is not installed (apt-get install bindfs)"
	} else if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "/dev/fuse is missing"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s, and CI=true: the FUSE test must run in CI", why)
	}
	t.Skipf("%s; set CI=true to make this a failure", why)
}

// bindMount mounts src at a new folder with bindfs, standing in for one
// machine's mount of a network volume: two such mounts share the files but
// neither the page cache nor the locks.
func bindMount(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if out, err := exec.Command("bindfs", src, dst).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bindfs: %v %s", err, out)
		}
		t.Skipf("bindfs could not mount (%v %s); set CI=true to make this a failure", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("fusermount", "-u", dst).CombinedOutput(); err != nil {
			exec.Command("fusermount", "-uz", dst).Run()
			t.Logf("unmount %s: %v %s", dst, err, out)
		}
	})
	return dst
}

// Two dashboards on two FUSE mounts of one folder, as two pods on one
// network volume: they choose the rollback journal, one writes and the
// other refuses, and after both stop the file is sound, holds every write
// that was answered 2xx, and nothing from the read-only one.
func TestTwoMountsOfOneVolume(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	bin := buildBinary(t)
	src := t.TempDir()
	m1, m2 := bindMount(t, src), bindMount(t, src)
	a := startBinaryWith(t, bin, m1, []string{"--node-name", "pod-a"})
	b := startBinaryWith(t, bin, m2, []string{"--node-name", "pod-b"})
	if _, h := health(t, b); h.Mode != "read_only" || h.writer() != "pod-a" {
		t.Fatalf("dashboard on the second mount: %+v", h)
	}

	var (
		mu       sync.Mutex
		ids      []int64
		refused  int
		wg       sync.WaitGroup
		failures []string
	)
	for name, p := range map[string]*proc{"a": a, "b": b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				id, status, raw := postActivity(t, p, fmt.Sprintf("%s %d", name, i), "")
				mu.Lock()
				switch {
				case status == http.StatusCreated:
					ids = append(ids, id)
				case status == http.StatusConflict && bytes.Contains(raw, []byte(`"read_only"`)):
					refused++
				default:
					failures = append(failures, fmt.Sprintf("%s: %d %s", name, status, raw))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("unexpected answers: %v", failures)
	}
	if status, raw := call(t, a, "PATCH", "/api/settings", `{"theme":"light"}`); status != 200 {
		t.Fatalf("settings on the writer: %d %s", status, raw)
	}
	if status, _ := call(t, b, "PATCH", "/api/settings", `{"theme":"dark"}`); status != http.StatusConflict {
		t.Fatalf("settings on the read-only one: %d", status)
	}
	if len(ids) != 100 || refused != 100 {
		t.Fatalf("%d written, %d refused; want 100 each", len(ids), refused)
	}
	// The writer stops: the dashboard on the other mount takes over and
	// writes through its own mount, with the rollback journal too.
	stopProc(t, a)
	waitFor(t, 20*time.Second, "the second mount's dashboard to become the writer", func() bool {
		_, h := health(t, b)
		return h.Mode == "writer"
	})
	for i := range 50 {
		id, status, raw := postActivity(t, b, fmt.Sprintf("after %d", i), "")
		if status != http.StatusCreated {
			t.Fatalf("write on the new writer: %d %s", status, raw)
		}
		ids = append(ids, id)
	}
	stopProc(t, b)
	if !strings.Contains(b.logs.String(), "this dashboard is the volume's writer now") {
		t.Errorf("the takeover was not logged:\n%s", b.logs.String())
	}

	if !strings.Contains(a.logs.String(), "journal_mode=delete filesystem=fuse") {
		t.Errorf("the writer did not choose the rollback journal on FUSE:\n%s", a.logs.String())
	}
	if !strings.Contains(b.logs.String(), `journal_mode="read-only (delete)"`) {
		t.Errorf("the reader did not open the database read-only:\n%s", b.logs.String())
	}
	dbPath := filepath.Join(src, "data", "dashboard.db")
	checkRows(t, dbPath, ids)
	raw := openRaw(t, dbPath)
	if n := scalar(t, raw, `SELECT count(*) FROM activity WHERE title LIKE 'b %'`); n != "0" {
		t.Errorf("the read-only dashboard wrote %s rows", n)
	}
	if v := scalar(t, raw, `SELECT value FROM settings WHERE key = 'theme'`); v != "light" {
		t.Errorf("theme = %s", v)
	}
	if m := scalar(t, raw, `PRAGMA journal_mode`); m != "delete" {
		t.Errorf("journal_mode = %s", m)
	}
}

// mountTmpfs mounts a small tmpfs, or skips (fails in CI) where mounting is
// not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v %s (CI=true: the disk-full test must run)", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (%v %s); set CI=true to make this a failure", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", dir).Run()
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

// A full disk answers 507 disk_full with a sentence to act on, health
// turns degraded, nothing half-written is kept, and everything recovers
// once space is freed.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ws := mountTmpfs(t, "24m")
	p := startBinaryWith(t, bin, ws, []string{"--node-name", "pod-a"})
	first, status, raw := postActivity(t, p, "before", "")
	if status != http.StatusCreated {
		t.Fatalf("%d %s", status, raw)
	}
	ids := []int64{first}
	filler := fill(t, ws)

	big := `{"blob":"` + strings.Repeat("x", 60<<10) + `"}`
	var full []byte
	for i := range 40 {
		id, status, raw := postActivity(t, p, fmt.Sprintf("big %d", i), big)
		if status == http.StatusCreated {
			ids = append(ids, id) // room was left in the journal; it counts
			continue
		}
		if status != http.StatusInsufficientStorage {
			t.Fatalf("write on a full disk: %d %s", status, raw)
		}
		full = raw
		break
	}
	if full == nil {
		t.Fatal("40 writes of 60 KiB fit on a full disk")
	}
	var env struct{ Error model.Error }
	json.Unmarshal(full, &env)
	if env.Error.Code != model.CodeDiskFull || !strings.Contains(env.Error.Message, "Free some space") {
		t.Fatalf("507 answer: %s", full)
	}
	if status, h := health(t, p); status != http.StatusServiceUnavailable || h.Status != "degraded" || h.DB != "disk_full" || h.Mode != "writer" {
		t.Fatalf("health on a full disk: %d %+v", status, h)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if status, h := health(t, p); status != 200 || h.DB != "ok" {
		t.Fatalf("health once space is freed: %d %+v", status, h)
	}
	id, status, raw := postActivity(t, p, "after", big)
	if status != http.StatusCreated {
		t.Fatalf("write once space is freed: %d %s", status, raw)
	}
	ids = append(ids, id)
	stopProc(t, p)
	checkRows(t, filepath.Join(ws, "data", "dashboard.db"), ids)
}

// A database file replaced under the running dashboard is noticed: health
// says error, writes are refused with a sentence, the log says it.
func TestDatabaseReplacedUnderTheDashboard(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ws := t.TempDir()
	p := startBinaryWith(t, bin, ws, []string{"--node-name", "pod-a"})
	dbPath := filepath.Join(ws, "data", "dashboard.db")
	// Someone restores an old copy over it.
	cp := filepath.Join(ws, "data", "copy.db")
	raw := openRaw(t, dbPath)
	if _, err := raw.ExecContext(context.Background(), `VACUUM INTO ?`, cp); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if err := os.Rename(cp, dbPath); err != nil {
		t.Fatal(err)
	}
	status, h := health(t, p)
	if status != http.StatusServiceUnavailable || h.Status != "degraded" || h.DB != "error" {
		t.Fatalf("health after the file was replaced: %d %+v", status, h)
	}
	_, status, body := postActivity(t, p, "lost", "")
	var env struct{ Error model.Error }
	json.Unmarshal(body, &env)
	if status != http.StatusServiceUnavailable || env.Error.Code != model.CodeDatabaseUnavailable || !strings.Contains(env.Error.Message, "Restart the dashboard") {
		t.Fatalf("write after the file was replaced: %d %s", status, body)
	}
	stopProc(t, p)
	if !strings.Contains(p.logs.String(), "database file deleted or replaced under the running dashboard") {
		t.Errorf("not logged:\n%s", p.logs.String())
	}
}
