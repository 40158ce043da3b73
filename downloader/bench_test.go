//go:build linux

package downloader

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The download benchmark runs the dashboard's downloader (cmd/dlbench
// fetch: a Manager installing a one-file preset, verified and fsynced) next
// to aria2c and curl, each a process of its own, against a loopback server
// (cmd/dlbench serve) that limits every TCP connection to a rate:
//
//	apt-get install -y aria2 curl
//	DASHBOARD_BENCH=1 go test -run TestBenchDownloads -v -timeout 60m ./downloader/
//
// DASHBOARD_BENCH_MIB (default 1024), DASHBOARD_BENCH_RATE (bytes a second
// per connection, default 16000000), DASHBOARD_BENCH_ROUNDS (default 3) and
// DASHBOARD_BENCH_SINGLE=0 (skip the slow single-connection runs) change it.
// It reports medians and never fails on a figure: the figures go into
// docs/PERFORMANCE.md with the machine's load.

type benchRun struct {
	seconds float64
	cpu     float64
	rssKiB  int64
}

func TestBenchDownloads(t *testing.T) {
	if os.Getenv("DASHBOARD_BENCH") != "1" {
		t.Skip("set DASHBOARD_BENCH=1 to run the download benchmark")
	}
	aria, err := exec.LookPath("aria2c")
	if err != nil {
		t.Fatal("aria2c is not installed (apt-get install -y aria2)")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed")
	}
	mib := envInt(t, "DASHBOARD_BENCH_MIB", 1024)
	rate := envInt(t, "DASHBOARD_BENCH_RATE", 16_000_000)
	rounds := envInt(t, "DASHBOARD_BENCH_ROUNDS", 3)
	single := os.Getenv("DASHBOARD_BENCH_SINGLE") != "0"
	size := mib << 20

	bin := filepath.Join(t.TempDir(), "dlbench")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/dlbench").CombinedOutput(); err != nil {
		t.Fatalf("build dlbench: %v\n%s", err, out)
	}
	throttled, sum := startBenchServer(t, bin, size, rate)
	open, _ := startBenchServer(t, bin, size, 0)
	t.Logf("machine: %s/%s, %d CPUs, %s; load before: %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), loadAvg())
	t.Logf("file: %d MiB; throttled server: %d bytes/s per connection", mib, rate)

	dash := func(url string, conns int) func(dir string) benchRun {
		return func(dir string) benchRun {
			return timeCmd(t, exec.Command(bin, "fetch", "-url", url, "-size", strconv.FormatInt(size, 10), "-sha256", sum,
				"-connections", strconv.Itoa(conns), "-dir", dir))
		}
	}
	tools := []struct {
		name string
		run  func(dir string) benchRun
		open bool
	}{
		{"dashboard, 8 connections (default)", dash("http://"+throttled+"/f", 8), false},
		{"aria2c -x16 -s16 -k1M --checksum", func(dir string) benchRun {
			return timeCmd(t, exec.Command(aria, "-x16", "-s16", "-k1M", "--checksum=sha-256="+sum, "-d", dir, "-o", "f.bin",
				"--console-log-level=warn", "--summary-interval=0", "--allow-overwrite=true", "http://"+throttled+"/f"))
		}, false},
		{"dashboard, 16 connections", dash("http://"+throttled+"/f", 16), false},
		{"dashboard, 1 connection", dash("http://"+throttled+"/f", 1), false},
		{"dashboard, 8 connections, unthrottled", dash("http://"+open+"/f", 8), true},
		{"curl -o file && sync file, unthrottled", func(dir string) benchRun {
			f := filepath.Join(dir, "f.bin")
			return timeCmd(t, exec.Command("sh", "-c", fmt.Sprintf("%s -s -o %s http://%s/f && sync %s", curl, f, open, f)))
		}, true},
		// Like for like: a copy that is checked and durable, as the
		// dashboard's is (not a target's anchor; the figures beside it).
		{"curl, sha256sum -c, sync, unthrottled", func(dir string) benchRun {
			f := filepath.Join(dir, "f.bin")
			return timeCmd(t, exec.Command("sh", "-c", fmt.Sprintf("%s -s -o %s http://%s/f && echo '%s  %s' | sha256sum -c --quiet && sync %s", curl, f, open, sum, f, f)))
		}, true},
		{"aria2c -x16 -s16 -k1M --checksum, unthrottled", func(dir string) benchRun {
			return timeCmd(t, exec.Command(aria, "-x16", "-s16", "-k1M", "--checksum=sha-256="+sum, "-d", dir, "-o", "f.bin",
				"--console-log-level=warn", "--summary-interval=0", "--allow-overwrite=true", "http://"+open+"/f"))
		}, true},
	}
	if !single {
		tools = slices.Delete(tools, 3, 4)
	}
	runs := make([][]benchRun, len(tools))
	for r := range rounds {
		// Each round starts with another tool, so none always gets the
		// cooler machine.
		for k := range tools {
			i := (k + int(r)) % len(tools)
			dir := t.TempDir()
			runs[i] = append(runs[i], tools[i].run(dir))
			settle(dir)
		}
	}
	t.Logf("load after: %s", loadAvg())
	t.Logf("%-48s %9s %9s %10s %9s  %s", "tool", "median s", "MiB/s", "CPU s", "peak RSS", "all runs (s)")
	med := make([]float64, len(tools))
	for i, tool := range tools {
		rs := runs[i]
		med[i] = medianOf(rs, func(r benchRun) float64 { return r.seconds })
		var all []string
		rss := int64(0)
		for _, r := range rs {
			all = append(all, fmt.Sprintf("%.2f", r.seconds))
			rss = max(rss, r.rssKiB)
		}
		t.Logf("%-48s %9.2f %9.0f %10.2f %6d MiB  %s", tool.name, med[i], float64(mib)/med[i],
			medianOf(rs, func(r benchRun) float64 { return r.cpu }), rss/1024, strings.Join(all, " "))
	}
	idx := func(name string) int {
		return slices.IndexFunc(tools, func(x struct {
			name string
			run  func(dir string) benchRun
			open bool
		}) bool {
			return x.name == name
		})
	}
	ratio := func(slow, fast string) float64 { return med[idx(slow)] / med[idx(fast)] }
	t.Logf("dashboard (8) vs aria2c (16): %.2f× its throughput (target ≥ 1.0×)", ratio("aria2c -x16 -s16 -k1M --checksum", "dashboard, 8 connections (default)"))
	t.Logf("dashboard (16) vs aria2c (16): %.2f×", ratio("aria2c -x16 -s16 -k1M --checksum", "dashboard, 16 connections"))
	if single {
		t.Logf("dashboard 8 connections vs 1: %.2f× (target ≥ 6×)", ratio("dashboard, 1 connection", "dashboard, 8 connections (default)"))
	}
	t.Logf("dashboard unthrottled vs curl + sync: %.2f× (target ≥ 0.9×)", ratio("curl -o file && sync file, unthrottled", "dashboard, 8 connections, unthrottled"))
	t.Logf("dashboard unthrottled vs curl + sha256sum + sync: %.2f×", ratio("curl, sha256sum -c, sync, unthrottled", "dashboard, 8 connections, unthrottled"))
	t.Logf("dashboard unthrottled vs aria2c -x16 --checksum: %.2f×", ratio("aria2c -x16 -s16 -k1M --checksum, unthrottled", "dashboard, 8 connections, unthrottled"))
}

func envInt(t *testing.T, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// startBenchServer runs dlbench serve and returns its address and the
// file's SHA-256.
func startBenchServer(t *testing.T, bin string, size, rate int64) (addr, sum string) {
	cmd := exec.Command(bin, "serve", "-size", strconv.FormatInt(size, 10), "-rate", strconv.FormatInt(rate, 10))
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	r := bufio.NewReader(out)
	for range 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("dlbench serve: %v", err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR "); ok {
			addr = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "SHA256 "); ok {
			sum = v
		}
	}
	go io.Copy(io.Discard, r)
	return addr, sum
}

// timeCmd runs cmd and measures it from outside: wall time, and the CPU
// and peak memory the kernel accounted to it.
func timeCmd(t *testing.T, cmd *exec.Cmd) benchRun {
	cmd.Stderr = os.Stderr
	began := time.Now()
	out, err := cmd.Output()
	el := time.Since(began)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	if strings.HasSuffix(cmd.Path, "dlbench") {
		var r struct{ Bytes int64 }
		if json.Unmarshal(out, &r) != nil || r.Bytes == 0 {
			t.Fatalf("dlbench fetch said %q", out)
		}
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return benchRun{seconds: el.Seconds(), cpu: cpu, rssKiB: ru.Maxrss}
}

func medianOf(rs []benchRun, f func(benchRun) float64) float64 {
	s := make([]float64, len(rs))
	for i, r := range rs {
		s[i] = f(r)
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// settle leaves the machine as each run found it: the file written to disk
// (curl and aria2c leave that to the kernel, which would slow whoever runs
// next), deleted, and a moment for the VM's disk and memory to catch up.
func settle(dir string) {
	syscall.Sync()
	os.RemoveAll(dir)
	time.Sleep(time.Second)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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
