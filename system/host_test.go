package system

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// tree writes files (path → content) under a new temporary folder.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    12000000 kB\n"

func TestReadMemory(t *testing.T) {
	const gib = int64(1) << 30
	hostUsed := int64(16000000-12000000) << 10
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  Memory
	}{
		{"no cgroup files", map[string]string{"proc/meminfo": meminfo}, Memory{TotalBytes: 16000000 << 10, UsedBytes: hostUsed, Source: "host"}},
		{"v2 limit in the namespace's root", map[string]string{
			"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"cg/cgroup.controllers": "cpu memory", "cg/memory.max": "4294967296\n", "cg/memory.current": "3221225472\n",
			"cg/memory.stat": "anon 1073741824\nfile 2147483648\ninactive_file 1073741824\nactive_file 1073741824\n",
		}, Memory{TotalBytes: 4 * gib, UsedBytes: 2 * gib, Source: "cgroup"}},
		{"v2 limit in the process's own cgroup", map[string]string{
			"proc/meminfo": meminfo, "proc/self/cgroup": "0::/kubepods/pod1/c1\n",
			"cg/cgroup.controllers": "cpu memory", "cg/kubepods/pod1/c1/memory.max": "2147483648", "cg/kubepods/pod1/c1/memory.current": "1073741824",
		}, Memory{TotalBytes: 2 * gib, UsedBytes: gib, Source: "cgroup"}},
		{"v2 no limit", map[string]string{
			"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"cg/cgroup.controllers": "cpu memory", "cg/memory.max": "max\n", "cg/memory.current": "3221225472\n",
		}, Memory{TotalBytes: 16000000 << 10, UsedBytes: hostUsed, Source: "host"}},
		{"v1 limit", map[string]string{
			"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/docker/abc\n0::/\n",
			"cg/memory/docker/abc/memory.limit_in_bytes": "8589934592", "cg/memory/docker/abc/memory.usage_in_bytes": "5368709120",
			"cg/memory/docker/abc/memory.stat": "cache 100\ntotal_inactive_file 1073741824\n",
		}, Memory{TotalBytes: 8 * gib, UsedBytes: 4 * gib, Source: "cgroup"}},
		{"v1 unlimited (a huge number)", map[string]string{
			"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/\n",
			"cg/memory/memory.limit_in_bytes": "9223372036854771712", "cg/memory/memory.usage_in_bytes": "5368709120",
		}, Memory{TotalBytes: 16000000 << 10, UsedBytes: hostUsed, Source: "host"}},
		{"a limit above the machine's memory", map[string]string{
			"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"cg/cgroup.controllers": "", "cg/memory.max": "68719476736", "cg/memory.current": "1",
		}, Memory{TotalBytes: 16000000 << 10, UsedBytes: hostUsed, Source: "host"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.files)
			got := readMemory(filepath.Join(root, "proc"), filepath.Join(root, "cg"))
			if got != tc.want {
				t.Errorf("readMemory = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCPUCores(t *testing.T) {
	n := runtime.NumCPU()
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int
	}{
		{"no cgroup", map[string]string{}, n},
		{"v2 quota of one and a half CPUs", map[string]string{"proc/self/cgroup": "0::/\n", "cg/cgroup.controllers": "", "cg/cpu.max": "150000 100000\n"}, min(n, 2)},
		{"v2 max", map[string]string{"proc/self/cgroup": "0::/\n", "cg/cgroup.controllers": "", "cg/cpu.max": "max 100000\n"}, n},
		{"v2 tiny quota", map[string]string{"proc/self/cgroup": "0::/\n", "cg/cgroup.controllers": "", "cg/cpu.max": "1000 100000\n"}, 1},
		{"v1 quota", map[string]string{"proc/self/cgroup": "3:cpu,cpuacct:/c\n", "cg/cpu/c/cpu.cfs_quota_us": "100000", "cg/cpu/c/cpu.cfs_period_us": "100000"}, 1},
		{"v1 none", map[string]string{"proc/self/cgroup": "3:cpu:/\n", "cg/cpu/cpu.cfs_quota_us": "-1", "cg/cpu/cpu.cfs_period_us": "100000"}, n},
		{"a quota above the CPUs there are", map[string]string{"proc/self/cgroup": "0::/\n", "cg/cgroup.controllers": "", "cg/cpu.max": "100000000 100000\n"}, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.files)
			if got := cpuCores(filepath.Join(root, "proc"), filepath.Join(root, "cg")); got != tc.want {
				t.Errorf("cpuCores = %d, want %d", got, tc.want)
			}
		})
	}
}

// The percentage is the CPU time used between two readings over the time
// available: from the cgroup's counter, else from /proc/stat's jiffies.
func TestCPUPercent(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }

	t.Run("cgroup v2", func(t *testing.T) {
		root := tree(t, map[string]string{"proc/self/cgroup": "0::/\n", "cg/cgroup.controllers": "", "cg/cpu.max": "200000 100000\n", "cg/cpu.stat": "usage_usec 1000000\nuser_usec 1\n"})
		proc, cg := filepath.Join(root, "proc"), filepath.Join(root, "cg")
		var s cpuSampler
		s.read(proc, cg, now) // the first reading only starts the count
		clock = clock.Add(10 * time.Second)
		// 5 CPU seconds in 10 s on 2 cores: a quarter.
		if err := os.WriteFile(filepath.Join(cg, "cpu.stat"), []byte("usage_usec 6000000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := s.read(proc, cg, now); got != (CPU{Cores: min(2, runtime.NumCPU()), Percent: float64(5) / (10 * float64(min(2, runtime.NumCPU()))) * 100}) {
			t.Errorf("read = %+v", got)
		}
	})
	t.Run("proc stat", func(t *testing.T) {
		root := tree(t, map[string]string{"proc/stat": "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n"})
		proc, cg := filepath.Join(root, "proc"), filepath.Join(root, "cg")
		var s cpuSampler
		s.read(proc, cg, now)
		clock = clock.Add(5 * time.Second)
		// 300 more busy jiffies of 1000: 30 %; guest (already in user) is not counted twice.
		if err := os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  300 0 200 1300 200 0 0 0 50 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := s.read(proc, cg, now); got.Percent != 30 {
			t.Errorf("read = %+v, want 30 %%", got)
		}
	})
	t.Run("nothing readable", func(t *testing.T) {
		root := t.TempDir()
		var s cpuSampler
		if got := s.read(root, root, now); got.Percent != 0 || got.Cores != runtime.NumCPU() {
			t.Errorf("read = %+v", got)
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
