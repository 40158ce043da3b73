package downloader

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"dashboard/model"
)

// Roles of the test binary run as another process.
func init() {
	roles["download"] = childDownload
	roles["holdlock"] = childHoldLock
}

// childDownload installs preset BIG with the settings the parent put in
// the environment and runs until it is killed.
func childDownload() error {
	dir := os.Getenv("DL_DIR")
	conns, _ := strconv.Atoi(os.Getenv("DL_CONNS"))
	window, _ := strconv.ParseInt(os.Getenv("DL_WINDOW"), 10, 64)
	m, err := New(Config{
		PresetsFile: filepath.Join(dir, "config", "presets.yaml"), ModelsDir: filepath.Join(dir, "models"),
		HFEndpoint: os.Getenv("DL_ENDPOINT"), Token: func(context.Context) string { return "hf_secret" },
		History: newFakeHistory(), Recorder: &fakeRecorder{}, Publisher: &fakePublisher{},
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Connections: conns, window: window, SlowAfter: 300 * time.Millisecond, RetryBase: time.Millisecond,
		FreeSpace: func(string) (uint64, error) { return 1 << 40, nil },
	})
	if err != nil {
		return err
	}
	ctx := context.Background()
	go m.Run(ctx)
	if _, err := m.Install(ctx, "BIG"); err != nil {
		return err
	}
	fmt.Println("STARTED")
	select {} // until the parent kills it
}

// childHoldLock opens and locks a .part as a download does, and keeps it
// until its standard input closes.
func childHoldLock() error {
	root, err := os.OpenRoot(os.Getenv("DL_DIR"))
	if err != nil {
		return err
	}
	p, err := openPart(root, os.Getenv("DL_REL"))
	if err != nil {
		return err
	}
	fmt.Println("LOCKED")
	io.Copy(io.Discard, os.Stdin)
	p.close()
	return nil
}

// startChild runs the test binary in a role and waits for its first line.
func startChild(t *testing.T, role, want string, env ...string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != want {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child %s said %q (%v); stderr:\n%s", role, line, err, stderr.String())
	}
	return cmd, stdin
}

// intersect is how many bytes a and b have in common.
func intersect(a, b spans) int64 {
	var n int64
	for _, x := range a {
		for _, y := range b {
			if lo, hi := max(x.from, y.from), min(x.to, y.to); hi > lo {
				n += hi - lo
			}
		}
	}
	return n
}

// A download killed with SIGKILL mid-file, then retried by a new process,
// fetches again at most about one range per connection.
func TestKilledMidDownloadRefetchesAtMostARangePerConnection(t *testing.T) {
	const conns, window = 4, 8 << 20
	data := big()
	rs := newRangeServer(t, data)
	rs.trouble = func(*served) trouble { return trouble{rate: 4 << 20} }
	dir := t.TempDir()
	yml := bigPreset("big/f.bin", hfURL("f.bin"), len(data))
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "presets.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, _ := startChild(t, "download", "STARTED", "DL_DIR="+dir, "DL_ENDPOINT="+rs.URL(),
		"DL_CONNS="+strconv.Itoa(conns), "DL_WINDOW="+strconv.Itoa(window))
	models := filepath.Join(dir, "models")
	waitFor(t, "a third of the file on disk", func() bool { return stateDone(t, models, "big/f.bin") > int64(len(data))/3 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(50 * time.Millisecond) // the server's handlers notice the closed connections
	before := len(rs.requests())
	sentBefore := rs.sentSpans(0)
	kept := stateSpans(t, models, "big/f.bin")

	rs.trouble = nil
	e := newEnv(t, rs.URL(), "", envOpts{dir: dir, cfg: func(c *Config) {
		c.Connections, c.window, c.SlowAfter = conns, window, 300*time.Millisecond
	}})
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download after the restart = %+v %+v", d, d.Error)
	}
	again := intersect(rs.sentSpans(before), sentBefore)
	bound := conns * pieceSize(window, conns)
	t.Logf("before the kill: %d bytes sent, %d named in the state; after: %d sent again (bound %d)",
		sentBefore.bytes(), kept.bytes(), again, bound)
	if again > bound {
		t.Errorf("%d bytes were fetched again after the restart, more than a range per connection (%d)", again, bound)
	}
	if first := rs.requests()[before]; first.from != kept.firstGap() {
		t.Errorf("the retry first asked from %d, the state's first gap is %d", first.from, kept.firstGap())
	}
}

// A .part is written by one process only: a second open of it, here or in
// another process, is refused with a sentence saying so.
func TestPartLockedByAnotherWriterIsRefused(t *testing.T) {
	data := randomBytes(200_000, 80)
	rs := newRangeServer(t, data)
	e := newEnv(t, rs.URL(), onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	if err := os.MkdirAll(e.models, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(e.models)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	first, err := openPart(root, "a/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openPart(root, "a/f.bin"); err == nil || !strings.Contains(err.Error(), "being written by another process") {
		t.Fatalf("a second open in this process: %v", err)
	}
	first.close()

	child, stdin := startChild(t, "holdlock", "LOCKED", "DL_DIR="+e.models, "DL_REL=a/f.bin")
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeDisk || !strings.Contains(d.Error.Message, "a/f.bin.part is being written by another process") {
		t.Fatalf("download while another process holds the .part = %+v %+v", d, d.Error)
	}
	if n := len(rs.requests()); n != 0 {
		t.Errorf("%d requests made for a file another process writes", n)
	}
	if !exists(filepath.Join(e.models, "a/f.bin.part")) {
		t.Error("the other writer's .part was removed")
	}
	stdin.Close()
	child.Wait()
	if d := e.wait(e.install("P").ID); d.Status != model.DownloadCompleted {
		t.Fatalf("download once the other writer let go = %+v %+v", d, d.Error)
	}
}

// usedSpace is the disk space the files under dir take.
func usedSpace(dir string) uint64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += allocatedBytes(fi)
			}
		}
		return nil
	})
	return uint64(n)
}

// Two downloads running side by side cannot both pass the free-space
// check for the same free bytes.
func TestConcurrentDownloadsShareFreeSpace(t *testing.T) {
	const size, capacity = 1_000_000, 1_500_000
	data := randomBytes(size, 81)
	rs := newRangeServer(t, data)
	rs.trouble = func(*served) trouble { return trouble{rate: 2 << 20} }
	yml := fmt.Sprintf(`presets:
  A:
    files: [{path: a/a.bin, url: %q, size: %d}]
  B:
    files: [{path: b/b.bin, url: %q, size: %d}]
`, hfURL("a.bin"), size, hfURL("b.bin"), size)
	var models string
	e := newEnv(t, rs.URL(), yml, envOpts{cfg: func(c *Config) {
		c.Concurrency = 2
		c.FreeSpace = func(string) (uint64, error) { return capacity - min(usedSpace(models), capacity), nil }
	}})
	models = e.models
	a, b := e.install("A"), e.install("B")
	da, db := e.wait(a.ID), e.wait(b.ID)
	ok, short := 0, 0
	for _, d := range []Download{da, db} {
		switch {
		case d.Status == model.DownloadCompleted:
			ok++
		case d.Status == model.DownloadFailed && d.Error.Code == model.CodeDiskSpace:
			short++
		}
	}
	if ok != 1 || short != 1 {
		t.Fatalf("with room for one file: A = %+v %+v, B = %+v %+v", da, da.Error, db, db.Error)
	}
}

// What a .part already holds is not asked of the disk again.
func TestResumeNeedsOnlyMissingSpace(t *testing.T) {
	const size = 1_000_000
	data := randomBytes(size, 82)
	rs := newRangeServer(t, data)
	yml := fmt.Sprintf("presets:\n  P:\n    files: [{path: a/f.bin, url: %q, size: %d}]\n", hfURL("f.bin"), size)
	e := newEnv(t, rs.URL(), yml, envOpts{cfg: func(c *Config) {
		c.FreeSpace = func(string) (uint64, error) { return 100_000, nil }
	}})
	// A .part of full size from an earlier run that got the first half.
	os.MkdirAll(filepath.Join(e.models, "a"), 0o755)
	part := append(append([]byte(nil), data[:size/2]...), make([]byte, size/2)...)
	if err := os.WriteFile(filepath.Join(e.models, "a/f.bin"+partSuffix), part, 0o644); err != nil {
		t.Fatal(err)
	}
	st := fmt.Sprintf(`{"version":1,"size":%d,"validator":%q,"sha256":%q,"done":[[0,%d]]}`, size, `"`+sha(data)+`"`, sha(data), size/2)
	if err := os.WriteFile(filepath.Join(e.models, "a/f.bin"+stateSuffix), []byte(st), 0o644); err != nil {
		t.Fatal(err)
	}
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("a/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if got := rs.requests()[0].from; got != size/2 {
		t.Errorf("the resume asked from %d, want %d", got, size/2)
	}
}

// Another process that places the file (renames its .part into place)
// between our open of the .part and our lock must not leave us holding
// the installed model: the path is opened again, and the model is kept.
func TestPartPlacedBetweenOpenAndLockIsOpenedAgain(t *testing.T) {
	models := t.TempDir()
	root, err := os.OpenRoot(models)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	model := randomBytes(4096, 81)
	if err := os.MkdirAll(filepath.Join(models, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "a/f.bin.part"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	placed := false
	beforePartLock = func(rel string) {
		if !placed {
			placed = true
			if err := os.Rename(filepath.Join(models, rel+partSuffix), filepath.Join(models, rel)); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { beforePartLock = nil })
	p, err := openPart(root, "a/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if !placed {
		t.Fatal("the hook did not run: the test tested nothing")
	}
	if err := p.empty(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(models, "a/f.bin")); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("the placed model was changed through the .part opened before it was placed: %d bytes, %v", len(got), err)
	}
	if !p.fresh {
		t.Error("the .part opened again is not a new one")
	}
}

// On a filesystem without fallocate the .part is sparse and takes its
// space as bytes land: the space a running download books must shrink as
// they do, or the bytes it wrote count twice (once as used, once as still
// needed) and a second download that fits is refused.
func TestSparsePartIsNotCountedTwice(t *testing.T) {
	const size, capacity = 1_000_000, 2_500_000
	data := randomBytes(size, 83)
	rs := newRangeServer(t, data)
	slow := true
	var mu sync.Mutex
	rs.trouble = func(r *served) trouble {
		mu.Lock()
		defer mu.Unlock()
		if slow && strings.HasSuffix(r.path, "a.bin") {
			return trouble{rate: 400_000}
		}
		return trouble{}
	}
	allocate = func(*os.File, int64) error { return errors.ErrUnsupported }
	t.Cleanup(func() { allocate = fallocate })
	yml := fmt.Sprintf(`presets:
  A:
    files: [{path: a/a.bin, url: %q, size: %d}]
  B:
    files: [{path: b/b.bin, url: %q, size: %d}]
`, hfURL("a.bin"), size, hfURL("b.bin"), size)
	var models string
	e := newEnv(t, rs.URL(), yml, envOpts{cfg: func(c *Config) {
		c.Concurrency = 2
		c.FreeSpace = func(string) (uint64, error) { return capacity - min(usedSpace(models), capacity), nil }
	}})
	models = e.models
	a := e.install("A")
	waitFor(t, "most of A on disk and named in its state", func() bool { return stateDone(t, models, "a/a.bin") > 700_000 })
	b := e.install("B")
	if d := e.wait(b.ID); d.Status != model.DownloadCompleted {
		t.Fatalf("B, which fits beside A, = %s %+v", d.Status, d.Error)
	}
	mu.Lock()
	slow = false
	mu.Unlock()
	if d := e.wait(a.ID); d.Status != model.DownloadCompleted {
		t.Fatalf("A = %s %+v", d.Status, d.Error)
	}
}

// Reading the free space (statfs on a slow network filesystem, say) does
// not hold the book: other downloads' bookings and releases go on.
func TestFreeSpaceIsReadOutsideTheBook(t *testing.T) {
	asked, answer := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b := &spaceBook{dir: t.TempDir(), log: slog.New(slog.DiscardHandler), held: map[int64]int64{}, free: func(string) (uint64, error) {
		once.Do(func() { close(asked) })
		<-answer
		return 1 << 30, nil
	}}
	first := make(chan error, 1)
	go func() { first <- b.reserve(1, 1000) }()
	<-asked
	others := make(chan struct{})
	go func() {
		b.release(2)
		b.reserve(3, 0) // books nothing new: no free-space question
		close(others)
	}()
	select {
	case <-others:
	case <-time.After(5 * time.Second):
		t.Fatal("another download's booking waited for a free-space question")
	}
	close(answer)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// A booking that goes while the free space is read (the download ended, its
// bytes now on disk and so in neither figure) makes that reading stale: it
// is read again, so two downloads never book the same bytes.
func TestFreeSpaceReadAgainWhenABookingGoesMeanwhile(t *testing.T) {
	const gb = int64(1) << 30
	var mu sync.Mutex
	disk := uint64(10 * gb)
	inFree, proceed := make(chan struct{}), make(chan struct{})
	first := true
	b := &spaceBook{dir: t.TempDir(), log: slog.New(slog.DiscardHandler), held: map[int64]int64{1: 8 * gb}, free: func(string) (uint64, error) {
		mu.Lock()
		f, wait := disk, first
		first = false
		mu.Unlock()
		if wait {
			close(inFree)
			<-proceed
		}
		return f, nil
	}}
	done := make(chan error)
	go func() { done <- b.reserve(2, 8*gb) }() // 10 GB free less 1's 8 GB: must be refused
	<-inFree
	// Meanwhile download 1 writes its 8 GB and ends.
	mu.Lock()
	disk -= uint64(8 * gb)
	mu.Unlock()
	b.release(1)
	close(proceed)
	if err := <-done; model.ErrorCode(err) != model.CodeDiskSpace {
		t.Fatalf("8 GB booked with 2 GB free: %v", err)
	}
}
