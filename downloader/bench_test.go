//go:build linux

package downloader

import (
	"bufio"
	"context"
	"crypto/sha256"
	"dashboard/model"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The throughput benchmark compares the dashboard with curl on a loopback
// server. The server and each dashboard run are separate processes (this
// test binary run again in another role), so CPU time and peak memory are
// the downloader's own:
//
//	DASHBOARD_BENCH=1 go test -run TestBenchDownloadVsCurl -v -timeout 30m ./downloader/
//
// DASHBOARD_BENCH_SIZES (MiB, comma-separated, default "256,1024") and
// DASHBOARD_BENCH_ROUNDS (default 3) change the runs.

const (
	benchRoleEnv = roleEnv
	benchAddrEnv = "DASHBOARD_BENCH_ADDR"
	benchSizeEnv = "DASHBOARD_BENCH_SIZE"
	benchDirEnv  = "DASHBOARD_BENCH_DIR"
)

// genBlock is the 1 MiB of pseudo-random bytes every block is built from;
// block i carries i in its first 8 bytes, so no two blocks are equal.
func genBlock() []byte {
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}

func genChunk(base, dst []byte, i int64) {
	copy(dst, base)
	binary.LittleEndian.PutUint64(dst, uint64(i))
}

// benchServer serves /f/<bytes> as generated data with its SHA-256 as ETag,
// never holding more than a block in memory.
func benchServer() {
	base := genBlock()
	sums := map[int64]string{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	for _, s := range strings.Split(os.Getenv(benchSizeEnv), ",") {
		n, _ := strconv.ParseInt(s, 10, 64)
		h := sha256.New()
		buf := make([]byte, len(base))
		for i := int64(0); i*int64(len(base)) < n; i++ {
			genChunk(base, buf, i)
			h.Write(buf[:min(int64(len(buf)), n-i*int64(len(buf)))])
		}
		sums[n] = hex.EncodeToString(h.Sum(nil))
	}
	fmt.Println("ADDR", ln.Addr().String())
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // parent gone: stop
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/f/"), 10, 64)
		sum, ok := sums[n]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("ETag", `"`+sum+`"`)
		buf := make([]byte, len(base))
		for i := int64(0); i*int64(len(buf)) < n; i++ {
			genChunk(base, buf, i)
			if _, err := w.Write(buf[:min(int64(len(buf)), n-i*int64(len(buf)))]); err != nil {
				return
			}
		}
	}))
}

type benchResult struct {
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"`
	MaxRSS  int64   `json:"max_rss_kib"`
}

func rusageCPU(ru *syscall.Rusage) float64 {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// benchClient downloads one file with a Manager and prints a benchResult.
func benchClient() error {
	size := os.Getenv(benchSizeEnv)
	dir := os.Getenv(benchDirEnv)
	yml := fmt.Sprintf("presets:\n  BENCH:\n    files:\n    - {path: bench/f.bin, url: \"http://%s/f/%s\", size: %s}\n", os.Getenv(benchAddrEnv), size, size)
	presets := filepath.Join(dir, "presets.yaml")
	if err := os.WriteFile(presets, []byte(yml), 0o644); err != nil {
		return err
	}
	m, err := New(Config{
		PresetsFile: presets, ModelsDir: filepath.Join(dir, "models"), HFEndpoint: "http://127.0.0.1:1",
		History: newFakeHistory(), Recorder: &fakeRecorder{}, Publisher: &fakePublisher{},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)

	if p := os.Getenv("DASHBOARD_BENCH_PROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	began := time.Now()
	q, err := m.Install(ctx, "BENCH")
	if err != nil {
		return err
	}
	m.mu.Lock()
	d := m.findLocked(q.ID)
	m.mu.Unlock()
	<-d.done
	el := time.Since(began)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	if got := m.snapshot(d); got.Status != model.DownloadCompleted {
		return fmt.Errorf("download ended %s: %+v", got.Status, got.Error)
	}
	return json.NewEncoder(os.Stdout).Encode(benchResult{
		Seconds: el.Seconds(),
		CPU:     rusageCPU(&after) - rusageCPU(&before),
		MaxRSS:  after.Maxrss,
	})
}

func init() {
	roles["server"] = func() error { benchServer(); return nil }
	roles["client"] = benchClient
}

func TestBenchDownloadVsCurl(t *testing.T) {
	if os.Getenv("DASHBOARD_BENCH") != "1" {
		t.Skip("set DASHBOARD_BENCH=1 to run the throughput benchmark")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	sizesMiB := []int64{256, 1024}
	if s := os.Getenv("DASHBOARD_BENCH_SIZES"); s != "" {
		sizesMiB = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.ParseInt(f, 10, 64)
			sizesMiB = append(sizesMiB, n)
		}
	}
	rounds := 3
	if s := os.Getenv("DASHBOARD_BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	var sizeList []string
	for _, s := range sizesMiB {
		sizeList = append(sizeList, strconv.FormatInt(s<<20, 10))
	}

	srv := exec.Command(os.Args[0], "-test.run=^$")
	srv.Env = append(os.Environ(), benchRoleEnv+"=server", benchSizeEnv+"="+strings.Join(sizeList, ","))
	stdin, _ := srv.StdinPipe()
	out, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); srv.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		t.Fatalf("server said %q, %v", line, err)
	}

	t.Logf("machine: %s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	t.Logf("%8s %-9s %10s %10s %12s %10s", "size", "tool", "best s", "MiB/s", "CPU s/GiB", "peak RSS")
	for i, mib := range sizesMiB {
		size := sizeList[i]
		var dash, crl []benchResult
		for r := range rounds {
			// Alternate who goes first so the page cache and CPU
			// frequency favour neither.
			runs := []func(){
				func() { dash = append(dash, runDashboard(t, addr, size)) },
				func() { crl = append(crl, runCurl(t, curl, addr, size)) },
			}
			if r%2 == 1 {
				runs[0], runs[1] = runs[1], runs[0]
			}
			for _, run := range runs {
				run()
			}
		}
		bd, bc := best(dash), best(crl)
		gib := float64(mib) / 1024
		for _, x := range []struct {
			tool string
			r    benchResult
			all  []benchResult
		}{{"dashboard", bd, dash}, {"curl", bc, crl}} {
			t.Logf("%5dMiB %-9s %10.3f %10.0f %12.2f %7dMiB  (all runs s: %s)", mib, x.tool, x.r.Seconds, float64(mib)/x.r.Seconds,
				x.r.CPU/gib, x.r.MaxRSS/1024, secs(x.all))
		}
		ratio := bc.Seconds / bd.Seconds
		t.Logf("%5dMiB dashboard/curl throughput: %.2f× best, %.2f× median", mib, ratio, median(crl)/median(dash))
		if ratio < 0.9 {
			t.Errorf("%d MiB: the dashboard reached %.2f× curl's throughput, want ≥ 0.9×", mib, ratio)
		}
	}
}

func best(rs []benchResult) benchResult {
	b := rs[0]
	for _, r := range rs[1:] {
		if r.Seconds < b.Seconds {
			b = r
		}
	}
	return b
}

func median(rs []benchResult) float64 {
	s := make([]float64, len(rs))
	for i, r := range rs {
		s[i] = r.Seconds
	}
	sort.Float64s(s)
	return s[len(s)/2]
}

func secs(rs []benchResult) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.2f", r.Seconds))
	}
	return strings.Join(s, " ")
}

// settle leaves the machine as each run found it: the file written to disk
// (curl leaves that to the kernel, which would otherwise slow whoever runs
// next), deleted, and a moment for the VM's disk and memory to catch up.
func settle(dir string) {
	syscall.Sync()
	os.RemoveAll(dir)
	time.Sleep(time.Second)
}

func runDashboard(t *testing.T, addr, size string) benchResult {
	dir := t.TempDir()
	defer settle(dir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchRoleEnv+"=client", benchAddrEnv+"="+addr, benchSizeEnv+"="+size, benchDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dashboard run: %v", err)
	}
	var r benchResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("dashboard run said %q: %v", out, err)
	}
	st, err := os.Stat(filepath.Join(dir, "models/bench/f.bin"))
	if err != nil || strconv.FormatInt(st.Size(), 10) != size {
		t.Fatalf("dashboard file: %v", err)
	}
	return r
}

func runCurl(t *testing.T, curl, addr, size string) benchResult {
	dir := t.TempDir()
	defer settle(dir)
	file := filepath.Join(dir, "f.bin")
	cmd := exec.Command(curl, "-s", "-o", file, "http://"+addr+"/f/"+size)
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl: %v", err)
	}
	el := time.Since(began)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	st, err := os.Stat(file)
	if err != nil || strconv.FormatInt(st.Size(), 10) != size {
		t.Fatalf("curl file: %v", err)
	}
	return benchResult{Seconds: el.Seconds(), CPU: rusageCPU(ru), MaxRSS: ru.Maxrss}
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
