package system

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSMI puts an nvidia-smi shell script first on the PATH. Its answer is
// read from a file each run, so a test can change it.
type fakeSMI struct {
	dir string
}

func newFakeSMI(t *testing.T) *fakeSMI {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		`echo "$@" > "` + dir + `/args"` + "\n" +
		`[ -f "` + dir + `/hang" ] && exec sleep 30` + "\n" +
		`[ -f "` + dir + `/fail" ] && { echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9; }` + "\n" +
		`cat "` + dir + `/out"` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return &fakeSMI{dir: dir}
}

func (f *fakeSMI) answer(t *testing.T, out string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "out"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// set creates or removes a marker file ("hang", "fail").
func (f *fakeSMI) set(t *testing.T, marker string, on bool) {
	t.Helper()
	p := filepath.Join(f.dir, marker)
	if on {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		os.Remove(p)
	}
}

// logBuffer is a concurrency-safe log sink for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) lines(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

const twoGPUs = "0, NVIDIA A100-SXM4-80GB, 81920, 40960, 87, 64\n" +
	"this line is not what nvidia-smi writes\n" +
	"1, NVIDIA RTX 4090, 24564, 1024, [N/A], [Not Supported]\n"

func intp(n int) *int { return &n }

func TestGPUsFromNvidiaSMI(t *testing.T) {
	smi := newFakeSMI(t)
	smi.answer(t, twoGPUs)
	var logs logBuffer
	g := newGPUReader(5*time.Second, time.Minute, time.Now, logs.logger())

	got := g.read(context.Background())
	want := []GPU{
		{Index: 0, Name: "NVIDIA A100-SXM4-80GB", MemoryTotalBytes: 81920 << 20, MemoryUsedBytes: 40960 << 20, UtilizationPercent: intp(87), TemperatureC: intp(64)},
		{Index: 1, Name: "NVIDIA RTX 4090", MemoryTotalBytes: 24564 << 20, MemoryUsedBytes: 1024 << 20},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d GPUs, want 2 (the malformed line skipped): %+v", len(got), got)
	}
	for i := range want {
		if !sameGPU(got[i], want[i]) {
			t.Errorf("GPU %d = %s, want %s", i, gpuString(got[i]), gpuString(want[i]))
		}
	}
	args, _ := os.ReadFile(filepath.Join(smi.dir, "args"))
	if strings.TrimSpace(string(args)) != "--query-gpu=index,name,memory.total,memory.used,utilization.gpu,temperature.gpu --format=csv,noheader,nounits" {
		t.Errorf("nvidia-smi was asked %q", args)
	}
	if n := logs.lines("level=WARN") + logs.lines("level=ERROR"); n != 0 {
		t.Errorf("a good answer logged %d warnings", n)
	}
}

// A hang is cut off at the timeout; it, like a failure, gives no GPUs and
// one log line however often the figures are asked for, and nvidia-smi is
// left alone for a while before it is tried again.
func TestGPUTroubleLoggedOnce(t *testing.T) {
	smi := newFakeSMI(t)
	smi.answer(t, twoGPUs)
	smi.set(t, "hang", true)
	var logs logBuffer
	clock := time.Now()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	g := newGPUReader(300*time.Millisecond, time.Minute, now, logs.logger())

	start := time.Now()
	if got := g.read(context.Background()); len(got) != 0 {
		t.Fatalf("a hanging nvidia-smi gave %+v", got)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the hang was not cut off: %v", took)
	}
	for range 20 { // every 5 s for a while: nothing is run, nothing logged
		if got := g.read(context.Background()); len(got) != 0 {
			t.Fatalf("GPUs during the retry wait: %+v", got)
		}
		advance(2 * time.Second)
	}
	if n := logs.lines("nvidia-smi failed"); n != 1 {
		t.Fatalf("%d log lines about the hang, want 1:\n%s", n, logs.b.String())
	}
	if !strings.Contains(logs.b.String(), "no answer within 300ms") {
		t.Errorf("the log does not say why: %s", logs.b.String())
	}

	// Another failure of the same spell adds no line.
	smi.set(t, "hang", false)
	smi.set(t, "fail", true)
	advance(time.Minute)
	if got := g.read(context.Background()); len(got) != 0 {
		t.Fatalf("a failing nvidia-smi gave %+v", got)
	}
	if n := logs.lines("nvidia-smi failed"); n != 1 {
		t.Fatalf("%d log lines, want still 1", n)
	}

	// Back to work: the GPUs return and that is said once.
	smi.set(t, "fail", false)
	advance(time.Minute)
	if got := g.read(context.Background()); len(got) != 2 {
		t.Fatalf("after recovery: %+v", got)
	}
	if n := logs.lines("nvidia-smi answers again"); n != 1 {
		t.Errorf("recovery logged %d times", n)
	}
}

func TestNoNvidiaSMI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var logs logBuffer
	g := newGPUReader(time.Second, time.Minute, time.Now, logs.logger())
	for range 3 {
		if got := g.read(context.Background()); got == nil || len(got) != 0 {
			t.Fatalf("without nvidia-smi: %#v, want an empty list", got)
		}
	}
	if n := logs.lines("no nvidia-smi on the PATH"); n != 1 {
		t.Errorf("%d log lines, want 1", n)
	}
}

func TestParseGPUs(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"0, Tesla T4, 15360, 0, 0, 41", true},
		{"0, Tesla T4, 15360, 0, 0", false},             // a field short
		{"0, Tesla T4, 15360, 0, 0, 41, 7", false},      // a field over
		{"x, Tesla T4, 15360, 0, 0, 41", false},         // no index
		{"0, Tesla T4, [N/A], 0, 0, 41", false},         // no memory
		{"0, , 15360, 0, 0, 41", false},                 // no name
		{"-1, Tesla T4, 15360, 0, 0, 41", false},        // a negative index
		{"3, H100, 81559, 12, [N/A], [N/A]", true},      // MIG: no utilisation
		{"  7 ,  L40S ,  46068 ,  5 ,  3 ,  30 ", true}, // spaces
	} {
		if _, ok := parseGPU(tc.line); ok != tc.ok {
			t.Errorf("parseGPU(%q) ok = %v, want %v", tc.line, ok, tc.ok)
		}
	}
}

func sameGPU(a, b GPU) bool {
	eq := func(x, y *int) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Index == b.Index && a.Name == b.Name && a.MemoryTotalBytes == b.MemoryTotalBytes && a.MemoryUsedBytes == b.MemoryUsedBytes &&
		eq(a.UtilizationPercent, b.UtilizationPercent) && eq(a.TemperatureC, b.TemperatureC)
}

func gpuString(g GPU) string {
	s := func(p *int) string {
		if p == nil {
			return "null"
		}
		return strconv.Itoa(*p)
	}
	return fmt.Sprintf("%d %s %d/%d util=%s temp=%s", g.Index, g.Name, g.MemoryUsedBytes, g.MemoryTotalBytes, s(g.UtilizationPercent), s(g.TemperatureC))
}
