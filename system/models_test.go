package system

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWalkCountsByTopFolder(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "checkpoints", "a.safetensors"), 1000)
	write(t, filepath.Join(dir, "checkpoints", "sub", "deep", "b.ckpt"), 2000)
	write(t, filepath.Join(dir, "loras", "c.safetensors"), 300)
	write(t, filepath.Join(dir, "loras", "d.safetensors.part"), 50)       // a download under way
	write(t, filepath.Join(dir, "loras", "d.safetensors.part.state"), 7)  // its state
	write(t, filepath.Join(dir, "loose.bin"), 40)                         // lying in the models folder
	if err := os.MkdirAll(filepath.Join(dir, "vae"), 0o755); err != nil { // empty: left out
		t.Fatal(err)
	}
	other := t.TempDir()
	write(t, filepath.Join(other, "elsewhere.bin"), 99999)
	if err := os.Symlink(other, filepath.Join(dir, "linked")); err != nil { // not followed
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "elsewhere.bin"), filepath.Join(dir, "loras", "link.bin")); err != nil {
		t.Fatal(err)
	}

	c := newCounter(dir, time.Minute, time.Now, discard())
	c.walk(context.Background())
	got := c.snapshot()
	want := []Folder{{"checkpoints", 3000, 2}, {"loras", 300, 1}, {".", 40, 1}}
	if !slices.Equal(got.Folders, want) || got.Bytes != 3340 || got.Files != 4 || got.CountedAt == nil {
		t.Fatalf("snapshot = %+v, want folders %+v, 3340 bytes in 4 files", got, want)
	}
	if p := c.partBytes(); p != 57 {
		t.Errorf("bytes of downloads under way = %d, want 57", p)
	}

	c.add("loras/new.safetensors", 700, 1)
	c.add("controlnet/x.pth", 10, 1)
	c.add("../outside.bin", 5, 1) // ignored
	c.add("checkpoints/a.safetensors", -1000, -1)
	got = c.snapshot()
	want = []Folder{{"checkpoints", 2000, 1}, {"loras", 1000, 2}, {".", 40, 1}, {"controlnet", 10, 1}}
	if !slices.Equal(got.Folders, want) {
		t.Fatalf("after the news: %+v, want %+v", got.Folders, want)
	}
	c.add("controlnet/x.pth", -10, -1)
	if got := c.snapshot(); len(got.Folders) != 3 {
		t.Fatalf("a folder emptied by removals stays listed: %+v", got.Folders)
	}

	if _, _, err := walkModels(context.Background(), filepath.Join(dir, "missing")); err == nil {
		t.Error("a models folder that does not exist counts as empty")
	}
}

// Walks come at most every WalkEvery however often they are asked for; news
// arriving during a walk survives it.
func TestWalkAtMostEveryInterval(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "loras", "a.safetensors"), 10)
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	c := newCounter(dir, time.Minute, now, discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx) }()
	defer func() { cancel(); <-done }()

	counted := func() time.Time {
		if at := c.snapshot().CountedAt; at != nil {
			return *at
		}
		return time.Time{}
	}
	c.request()
	waitUntil(t, "the first walk", func() bool { return !counted().IsZero() })
	first := counted()

	write(t, filepath.Join(dir, "loras", "b.safetensors"), 20) // unseen until the next walk
	for range 10 {
		advance(5 * time.Second) // ten frames, 50 s
		c.request()
	}
	time.Sleep(50 * time.Millisecond)
	if !counted().Equal(first) || c.snapshot().Bytes != 10 {
		t.Fatalf("walked again within a minute: counted %v (first %v), %d bytes", counted(), first, c.snapshot().Bytes)
	}
	advance(15 * time.Second)
	c.request()
	waitUntil(t, "the walk a minute later", func() bool { return counted().After(first) })
	if got := c.snapshot().Bytes; got != 30 {
		t.Fatalf("after the second walk: %d bytes, want 30", got)
	}
}

func TestNewsDuringAWalkIsKept(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "loras", "a.safetensors"), 10)
	c := newCounter(dir, time.Minute, time.Now, discard())
	c.mu.Lock()
	c.walking = true // as if a walk had started and already passed loras/
	c.mu.Unlock()
	c.add("loras/landed.safetensors", 5, 1)
	c.mu.Lock()
	c.walking = false
	pending := c.pending
	c.mu.Unlock()
	if len(pending) != 1 {
		t.Fatalf("news during a walk not kept for it: %+v", pending)
	}
	// The walk itself resets pending and re-applies it after counting.
	c.walk(context.Background())
	c.add("loras/after.safetensors", 1, 1)
	if got := c.snapshot().Bytes; got != 11 {
		t.Fatalf("bytes = %d, want 11 (news outside a walk is not replayed)", got)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkWalk100k counts a models folder of 100,000 files in 100 folders
// of 1,000 (and one folder of 20,000, as a LoRA collection can be). Its time
// per walk and the memory it allocates are in docs/PERFORMANCE.md. The tree
// is built once, in the system's temporary folder (DASHBOARD_WALK_DIR picks
// another filesystem, such as a network mount).
func BenchmarkWalk100k(b *testing.B) {
	root := os.Getenv("DASHBOARD_WALK_DIR")
	if root == "" {
		root = b.TempDir()
	} else {
		var err error
		if root, err = os.MkdirTemp(root, "walk-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(root) })
	}
	files := 0
	for d := range 80 {
		dir := filepath.Join(root, fmt.Sprintf("folder%02d", d%8), fmt.Sprintf("sub%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 1000 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("model-%04d.safetensors", f)), []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
			files++
		}
	}
	big := filepath.Join(root, "loras")
	if err := os.MkdirAll(big, 0o755); err != nil {
		b.Fatal(err)
	}
	for f := range 20000 {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("lora-%05d.safetensors", f)), []byte("xy"), 0o644); err != nil {
			b.Fatal(err)
		}
		files++
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	peak := heapPeak(b)
	b.ResetTimer()
	for b.Loop() {
		folders, _, err := walkModels(context.Background(), root)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, f := range folders {
			n += f.Files
		}
		if n != int64(files) {
			b.Fatalf("counted %d files, want %d", n, files)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(files)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(files), "B/file")
	b.ReportMetric(float64(peak())/(1<<20), "MiB-heap-peak")
}

// heapPeak samples the heap's objects every millisecond (runtime/metrics does
// not stop the world) and returns a function that stops and reports the most
// seen above the level at the start.
func heapPeak(b *testing.B) func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v := read(); v > base && v-base > peak.Load() {
					peak.Store(v - base)
				}
			}
		}
	}()
	var once sync.Once
	report := func() uint64 {
		once.Do(func() { close(stop); <-done })
		return peak.Load()
	}
	b.Cleanup(func() { report() })
	return report
}
