package system

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// gpuQuery is what nvidia-smi is asked, in this order.
var gpuQuery = []string{"--query-gpu=index,name,memory.total,memory.used,utilization.gpu,temperature.gpu", "--format=csv,noheader,nounits"}

// gpuReader runs nvidia-smi. Without it, or when it fails, there are no
// GPUs: the trouble is logged once (and its end once), and nvidia-smi is not
// tried again for a while. A run that outlasts the timeout is killed; one
// that cannot be killed (a GPU driver in trouble can leave it stuck in the
// kernel) is left to its own goroutine, and no second one is started while
// it lives, so stuck processes never pile up.
type gpuReader struct {
	timeout, retry time.Duration
	now            func() time.Time
	log            *slog.Logger

	mu      sync.Mutex
	running bool      // a run is under way (or stuck)
	retryAt time.Time // after a failure, no run before this
	failing bool
	runs    sync.WaitGroup
}

func newGPUReader(timeout, retry time.Duration, now func() time.Time, log *slog.Logger) *gpuReader {
	return &gpuReader{timeout: timeout, retry: retry, now: now, log: log}
}

// read returns the GPUs, or none.
func (g *gpuReader) read(ctx context.Context) []GPU {
	g.mu.Lock()
	if g.running || g.now().Before(g.retryAt) {
		g.mu.Unlock()
		return []GPU{}
	}
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		g.failedLocked("no nvidia-smi on the PATH: no GPU figures", slog.LevelInfo, err)
		g.mu.Unlock()
		return []GPU{}
	}
	g.running = true
	g.mu.Unlock()

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	g.runs.Add(1)
	go func() {
		defer g.runs.Done()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
		defer cancel()
		cmd := exec.CommandContext(rctx, path, gpuQuery...)
		cmd.WaitDelay = time.Second // a child still holding the output
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if rctx.Err() != nil {
			err = fmt.Errorf("no answer within %s", g.timeout)
		} else if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(firstLine(stderr.String())))
		}
		g.mu.Lock()
		g.running = false
		g.mu.Unlock()
		done <- result{out, err}
	}()

	var r result
	select {
	case r = <-done:
	case <-time.After(g.timeout + 2*time.Second):
		r.err = fmt.Errorf("nvidia-smi is stuck (more than %s) and could not be stopped", g.timeout)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.err != nil {
		g.failedLocked("nvidia-smi failed: no GPU figures", slog.LevelWarn, r.err)
		return []GPU{}
	}
	gpus, skipped := parseGPUs(r.out)
	if skipped > 0 {
		g.log.Debug("nvidia-smi lines skipped", "lines", skipped)
	}
	if g.failing {
		g.log.Info("nvidia-smi answers again", "gpus", len(gpus))
		g.failing = false
	}
	return gpus
}

// failedLocked logs the first failure of a spell and holds off retries.
func (g *gpuReader) failedLocked(msg string, level slog.Level, err error) {
	g.retryAt = g.now().Add(g.retry)
	if g.failing {
		return
	}
	g.failing = true
	g.log.Log(context.Background(), level, msg, "err", err, "retry_every", g.retry.String())
}

// wait gives runs under way up to d to end, at shutdown.
func (g *gpuReader) wait(d time.Duration) {
	done := make(chan struct{})
	go func() {
		g.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		g.log.Warn("nvidia-smi still running at shutdown; leaving it")
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// parseGPUs reads nvidia-smi's CSV. A line that does not have six fields, or
// whose index or memory is not a number, is skipped (and counted); a
// utilisation or temperature of "[N/A]" is null.
func parseGPUs(out []byte) ([]GPU, int) {
	gpus := []GPU{}
	skipped := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		g, ok := parseGPU(line)
		if !ok {
			skipped++
			continue
		}
		gpus = append(gpus, g)
	}
	return gpus, skipped
}

func parseGPU(line string) (GPU, bool) {
	f := strings.Split(line, ",")
	if len(f) != 6 {
		return GPU{}, false
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	index, err1 := strconv.Atoi(f[0])
	total, err2 := strconv.ParseInt(f[2], 10, 64)
	used, err3 := strconv.ParseInt(f[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || f[1] == "" || index < 0 || total < 0 || used < 0 {
		return GPU{}, false
	}
	return GPU{
		Index:              index,
		Name:               f[1],
		MemoryTotalBytes:   total << 20, // nvidia-smi counts MiB
		MemoryUsedBytes:    used << 20,
		UtilizationPercent: optionalInt(f[4]),
		TemperatureC:       optionalInt(f[5]),
	}, true
}

// optionalInt is nil for "[N/A]", "[Not Supported]" and anything else that
// is not a whole number.
func optionalInt(s string) *int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil
	}
	return &n
}
