package system

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cgroupPaths finds this process's cgroup: the v2 path ("0::/…") and the v1
// path of each controller, from /proc/self/cgroup.
func cgroupPaths(procDir string) (v2 string, v1 map[string]string) {
	v1 = map[string]string{}
	data, err := os.ReadFile(filepath.Join(procDir, "self", "cgroup"))
	if err != nil {
		return "", v1
	}
	for _, line := range strings.Split(string(data), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if id == "0" && ctrls == "" {
			v2 = p
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			v1[c] = p
		}
	}
	return v2, v1
}

// cgroupFile finds a cgroup file: in the process's own cgroup, else at the
// hierarchy's root (a container with its own cgroup namespace sees its cgroup
// there). "" when neither exists.
func cgroupFile(root, own, name string) string {
	for _, dir := range []string{filepath.Join(root, filepath.FromSlash(own)), root} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// readInt reads a file holding one integer; ok is false for "max", a
// missing file or anything else.
func readInt(path string) (int64, bool) {
	if path == "" {
		return 0, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n, err == nil
}

// readKeyed reads "key value" lines (memory.stat, cpu.stat) or "Key: value
// kB" lines (/proc/meminfo) and returns the value of key.
func readKeyed(path, key string) (int64, bool) {
	if path == "" {
		return 0, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && strings.TrimSuffix(f[0], ":") == key {
			n, err := strconv.ParseInt(f[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// readMemory is the container's memory when a cgroup (v2, else v1) limits it
// below the machine's, else the machine's. Used leaves out the page cache
// the kernel can drop (inactive files), as docker stats does, else a pod
// that has written a few models looks full.
func readMemory(procDir, cgroupDir string) Memory {
	meminfo := filepath.Join(procDir, "meminfo")
	totalKB, _ := readKeyed(meminfo, "MemTotal")
	availKB, okAvail := readKeyed(meminfo, "MemAvailable")
	host := Memory{TotalBytes: totalKB << 10, Source: "host"}
	if okAvail {
		host.UsedBytes = max(0, (totalKB-availKB)<<10)
	}

	v2, v1 := cgroupPaths(procDir)
	var limit, usage, inactive int64
	var ok bool
	if _, err := os.Stat(filepath.Join(cgroupDir, "cgroup.controllers")); err == nil {
		limit, ok = readInt(cgroupFile(cgroupDir, v2, "memory.max"))
		usage, _ = readInt(cgroupFile(cgroupDir, v2, "memory.current"))
		inactive, _ = readKeyed(cgroupFile(cgroupDir, v2, "memory.stat"), "inactive_file")
	} else {
		root := filepath.Join(cgroupDir, "memory")
		limit, ok = readInt(cgroupFile(root, v1["memory"], "memory.limit_in_bytes"))
		usage, _ = readInt(cgroupFile(root, v1["memory"], "memory.usage_in_bytes"))
		inactive, _ = readKeyed(cgroupFile(root, v1["memory"], "memory.stat"), "total_inactive_file")
	}
	// v1 writes "no limit" as a huge number; a limit at or above the
	// machine's memory limits nothing.
	if !ok || limit <= 0 || (host.TotalBytes > 0 && limit >= host.TotalBytes) {
		return host
	}
	return Memory{TotalBytes: limit, UsedBytes: min(limit, max(0, usage-inactive)), Source: "cgroup"}
}

// cpuSampler turns cumulative CPU time into a percentage between two
// readings. Its state is guarded by mu, as GET /api/system and the frames may
// read at once.
type cpuSampler struct {
	mu   sync.Mutex
	prev cpuSample
}

type cpuSample struct {
	at    time.Time
	busy  float64 // CPU seconds used (cgroup) or busy jiffies (/proc/stat)
	total float64 // /proc/stat only: all jiffies
	kind  string  // "cgroup" or "proc"
}

// staleSample is how old a previous reading may be; an older one would give
// the average over a long quiet spell, so a fresh pair is taken instead.
const staleSample = 30 * time.Second

// read returns the cores this process may use and how busy they were since
// the previous reading (or over the last 200 ms when there is none recent).
func (c *cpuSampler) read(procDir, cgroupDir string, now func() time.Time) CPU {
	cores := cpuCores(procDir, cgroupDir)
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := sampleCPU(procDir, cgroupDir, now())
	if !ok {
		return CPU{Cores: cores}
	}
	prev := c.prev
	if prev.kind != cur.kind || cur.at.Sub(prev.at) > staleSample || !cur.at.After(prev.at) {
		time.Sleep(200 * time.Millisecond)
		prev = cur
		if cur, ok = sampleCPU(procDir, cgroupDir, now()); !ok {
			return CPU{Cores: cores}
		}
	}
	c.prev = cur
	var pct float64
	switch cur.kind {
	case "cgroup":
		wall := cur.at.Sub(prev.at).Seconds()
		if wall > 0 && cores > 0 {
			pct = (cur.busy - prev.busy) / (wall * float64(cores)) * 100
		}
	default:
		if d := cur.total - prev.total; d > 0 {
			pct = (cur.busy - prev.busy) / d * 100
		}
	}
	pct = math.Round(min(100, max(0, pct))*10) / 10
	return CPU{Cores: cores, Percent: pct}
}

// sampleCPU reads the cgroup's CPU time (v2 cpu.stat, v1 cpuacct.usage) or,
// without one, the machine's from /proc/stat.
func sampleCPU(procDir, cgroupDir string, at time.Time) (cpuSample, bool) {
	v2, v1 := cgroupPaths(procDir)
	if _, err := os.Stat(filepath.Join(cgroupDir, "cgroup.controllers")); err == nil {
		if us, ok := readKeyed(cgroupFile(cgroupDir, v2, "cpu.stat"), "usage_usec"); ok {
			return cpuSample{at: at, busy: float64(us) / 1e6, kind: "cgroup"}, true
		}
	} else if ns, ok := readInt(cgroupFile(filepath.Join(cgroupDir, "cpuacct"), v1["cpuacct"], "cpuacct.usage")); ok {
		return cpuSample{at: at, busy: float64(ns) / 1e9, kind: "cgroup"}, true
	}
	data, err := os.ReadFile(filepath.Join(procDir, "stat"))
	if err != nil {
		return cpuSample{}, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuSample{}, false
	}
	var total, idle float64
	for i, v := range f[1:] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return cpuSample{}, false
		}
		if i == 8 || i == 9 { // guest time is already in user and nice
			continue
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return cpuSample{at: at, busy: total - idle, total: total, kind: "proc"}, true
}

// cpuCores is how many CPUs this process may use: the cgroup's quota
// (rounded up) when it has one below the CPUs it can run on, else those.
func cpuCores(procDir, cgroupDir string) int {
	n := runtime.NumCPU() // honours the CPU affinity mask (cpuset)
	v2, v1 := cgroupPaths(procDir)
	var quota, period int64
	if _, err := os.Stat(filepath.Join(cgroupDir, "cgroup.controllers")); err == nil {
		if p := cgroupFile(cgroupDir, v2, "cpu.max"); p != "" {
			if data, err := os.ReadFile(p); err == nil {
				f := strings.Fields(string(data))
				if len(f) == 2 {
					quota, _ = strconv.ParseInt(f[0], 10, 64) // "max" leaves 0
					period, _ = strconv.ParseInt(f[1], 10, 64)
				}
			}
		}
	} else {
		root := filepath.Join(cgroupDir, "cpu")
		quota, _ = readInt(cgroupFile(root, v1["cpu"], "cpu.cfs_quota_us"))
		period, _ = readInt(cgroupFile(root, v1["cpu"], "cpu.cfs_period_us"))
	}
	if quota > 0 && period > 0 {
		if q := int(math.Ceil(float64(quota) / float64(period))); q < n {
			return max(1, q)
		}
	}
	return n
}
