package realtime_test

// The load test and the fan-out benchmark. Both serve the hub through Fiber and
// gofiber/contrib/websocket, as production does, to real WebSocket clients on
// loopback. Results are written up in docs/PERFORMANCE.md.
//
//	DASHBOARD_LOAD=1 go test -run '^TestLoad1000$' -count=1 -v ./realtime/
//	go test -run '^$' -bench BenchmarkHubFanout -benchtime 3s ./realtime/

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"

	"dashboard/realtime"
)

// Environment of the load test. The child variables are set by the parent for
// the process that runs the clients.
const (
	envLoad           = "DASHBOARD_LOAD"         // "1" runs TestLoad1000
	envLoadClients    = "DASHBOARD_LOAD_CLIENTS" // default 1000
	envLoadChildURL   = "DASHBOARD_LOAD_CHILD_URL"
	envLoadChildSeqs  = "DASHBOARD_LOAD_CHILD_SEQS"
	envLoadChildPaced = "DASHBOARD_LOAD_CHILD_PACED"
)

// loadEvent is what the load test publishes: a sequence number to find lost
// frames, the publish time (wall clock, comparable across processes on one
// machine) and padding to the size of a typical Download object.
type loadEvent struct {
	Seq int64  `json:"seq"`
	TS  int64  `json:"ts"`
	Pad string `json:"pad"`
}

// newLoadEvent makes an event about as big as a Download frame (~400 bytes).
func newLoadEvent(seq int64, ts time.Time) loadEvent {
	return loadEvent{Seq: seq, TS: ts.UnixNano(), Pad: strings.Repeat("p", 320)}
}

// loadSnapshot is about as big as a real snapshot: 50 activity rows.
func loadSnapshot() any {
	type row struct {
		ID        int    `json:"id"`
		Type      string `json:"type"`
		Status    string `json:"status"`
		Title     string `json:"title"`
		Subtitle  string `json:"subtitle"`
		CreatedAt string `json:"created_at"`
	}
	rows := make([]row, 50)
	for i := range rows {
		rows[i] = row{i + 1, "generation", "completed", "Generated image with FLUX Schnell", "1024x1024, 4 steps", "2026-02-20T10:00:00Z"}
	}
	return map[string]any{"downloads": []any{}, "activity": rows, "settings": map[string]any{"theme": "dark"}}
}

// childResult is what the client process reports when its clients have ended.
type childResult struct {
	Clients     int      `json:"clients"`
	DialSeconds float64  `json:"dial_seconds"`
	MinFrames   int64    `json:"min_frames"`
	MaxFrames   int64    `json:"max_frames"`
	Missed      int64    `json:"missed"`
	Closed1001  int      `json:"closed_1001"`
	OtherEnds   []string `json:"other_ends"`
	// Per delivery (one event to one client) during the paced phase.
	DeliveryP50 time.Duration `json:"delivery_p50"`
	DeliveryP99 time.Duration `json:"delivery_p99"`
	DeliveryMax time.Duration `json:"delivery_max"`
}

// memSample is the memory the hub side of the test process holds.
type memSample struct {
	heap, stacks uint64
	goroutines   int
}

func sampleMem() memSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapAlloc, stacks: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// TestLoad1000 connects 1,000 clients (in a child process, so that the memory
// measured here is the server's alone) and measures, for one event delivered to
// every client, p50/p99 latency at a steady 20 events/s; the frames per second
// the hub sustains when publishing as fast as the slowest client allows; that no
// client misses a frame; and the memory an idle client costs the server.
func TestLoad1000(t *testing.T) {
	if os.Getenv(envLoad) != "1" {
		t.Skipf("set %s=1 to run the load test", envLoad)
	}
	n := envInt(t, envLoadClients, 1000)
	const (
		pacedEvents = 200                   // the latency phase
		pacedEvery  = 50 * time.Millisecond // 20 events/s
		fastEvents  = 3000                  // the throughput phase
		window      = 64                    // events in flight, a quarter of the send buffer
	)
	total := pacedEvents + fastEvents
	raiseFileLimit(t, uint64(n)+512)

	logs := &logBuffer{}
	hub := realtime.New(realtime.Options{Logger: slogTo(logs)})
	srv := startFiber(t, hub, snapshotOf(loadSnapshot()))

	loadBefore := loadAverage()
	base := sampleMem()
	child := startLoadChild(t, srv.url, n, total, pacedEvents)
	select {
	case <-child.ready:
	case err := <-child.exited:
		t.Fatalf("client process ended before its clients were ready: %v\n%s", err, child.stderr)
	case <-time.After(2 * time.Minute):
		t.Fatal("clients did not connect")
	}
	waitFor(t, "every client to be registered", func() bool { return hub.Clients() == n })
	time.Sleep(time.Second) // idle, so that connection setup garbage is gone
	idle := sampleMem()

	// Phase 1: a steady trickle, each event timed from Publish to its arrival at
	// the last client.
	publishCost := make([]time.Duration, 0, pacedEvents)
	tick := time.NewTicker(pacedEvery)
	for seq := int64(1); seq <= pacedEvents; seq++ {
		<-tick.C
		start := time.Now()
		hub.Publish("download", newLoadEvent(seq, start))
		publishCost = append(publishCost, time.Since(start))
	}
	tick.Stop()
	child.waitAcked(t, pacedEvents)

	// Phase 2: as fast as the slowest client takes them, never more than window
	// events ahead of it so that nobody is dropped.
	fastStart, fastCPU := time.Now(), cpuTime()
	for seq := int64(pacedEvents + 1); seq <= int64(total); seq++ {
		child.waitAcked(t, seq-window)
		hub.Publish("download", newLoadEvent(seq, time.Now()))
	}
	child.waitAcked(t, int64(total))
	fastTime, fastCPU := time.Since(fastStart), cpuTime()-fastCPU

	if got := hub.Clients(); got != n {
		t.Errorf("%d clients connected after publishing, want %d (some were dropped)", got, n)
	}
	closeStart := time.Now()
	hub.Close(context.Background())
	closeTime := time.Since(closeStart)

	var res childResult
	select {
	case err := <-child.exited:
		if err != nil {
			t.Fatalf("client process: %v\n%s", err, child.stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("client process did not finish after Close")
	}
	if child.result == "" {
		t.Fatalf("client process reported no result\n%s", child.stderr)
	}
	if err := json.Unmarshal([]byte(child.result), &res); err != nil {
		t.Fatalf("decode client result: %v", err)
	}

	// Correctness: every client got every frame, in order, and a 1001 at the end.
	if res.Clients != n || res.MinFrames != int64(total) || res.MaxFrames != int64(total) || res.Missed != 0 {
		t.Errorf("clients=%d frames min=%d max=%d missed=%d, want %d clients with %d frames each and none missed",
			res.Clients, res.MinFrames, res.MaxFrames, res.Missed, n, total)
	}
	if res.Closed1001 != n {
		t.Errorf("%d clients got close 1001, want %d; other ends: %v", res.Closed1001, n, res.OtherEnds)
	}
	if strings.Contains(logs.String(), "dropped") {
		t.Errorf("the hub dropped clients:\n%s", logs)
	}

	all := child.allLatencies(pacedEvents)
	slices.Sort(publishCost)
	perClient := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) / 1024 }
	t.Logf("machine: %s/%s, %d CPUs, %s; load average %s before, %s after", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), loadBefore, loadAverage())
	t.Logf("clients: %d, connected in %.1fs", n, res.DialSeconds)
	t.Logf("idle memory per client (server side): heap %.1f KiB + stacks %.1f KiB = %.1f KiB; goroutines per client %.2f",
		perClient(base.heap, idle.heap), perClient(base.stacks, idle.stacks),
		perClient(base.heap+base.stacks, idle.heap+idle.stacks), float64(idle.goroutines-base.goroutines)/float64(n))
	t.Logf("paced phase (%d events at %d/s): to ALL clients p50 %v p99 %v max %v; per delivery p50 %v p99 %v max %v; Publish() call p50 %v p99 %v",
		pacedEvents, int(time.Second/pacedEvery),
		pct(all, 50), pct(all, 99), all[len(all)-1],
		res.DeliveryP50, res.DeliveryP99, res.DeliveryMax,
		pct(publishCost, 50), pct(publishCost, 99))
	frames := float64(fastEvents) * float64(n)
	t.Logf("throughput phase (%d events, window %d): %.0f events/s, %.0f frames/s, %v; server CPU %.2f µs per frame",
		fastEvents, window, float64(fastEvents)/fastTime.Seconds(), frames/fastTime.Seconds(), fastTime.Round(time.Millisecond),
		float64(fastCPU.Nanoseconds())/1e3/frames)
	t.Logf("Close with %d clients took %v", n, closeTime.Round(time.Millisecond))
}

// loadChild is the process running the clients, seen from the parent.
type loadChild struct {
	ready  chan struct{}
	exited chan error
	stderr *logBuffer
	result string // set before exited delivers

	acked    atomic.Int64  // highest seq every client has received
	progress chan struct{} // pulsed whenever acked grows
	mu       sync.Mutex
	latency  map[int64]time.Duration // seq → arrival at the last client
}

// startLoadChild runs this test binary again as TestLoadClientProcess.
func startLoadChild(t *testing.T, url string, clients, seqs, paced int) *loadChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envLoadChildURL+"="+url,
		envLoadClients+"="+strconv.Itoa(clients),
		envLoadChildSeqs+"="+strconv.Itoa(seqs),
		envLoadChildPaced+"="+strconv.Itoa(paced),
	)
	c := &loadChild{
		ready:    make(chan struct{}),
		exited:   make(chan error, 1),
		stderr:   &logBuffer{},
		progress: make(chan struct{}, 1),
		latency:  make(map[int64]time.Duration, seqs),
	}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("client process stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start client process: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.handleLine(sc.Text())
		}
		c.exited <- cmd.Wait()
	}()
	return c
}

func (c *loadChild) handleLine(line string) {
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "LOAD" {
		_, _ = c.stderr.Write([]byte(line + "\n"))
		return
	}
	switch fields[1] {
	case "ready":
		close(c.ready)
	case "ack":
		seq, _ := strconv.ParseInt(fields[2], 10, 64)
		lat, _ := strconv.ParseInt(fields[3], 10, 64)
		c.mu.Lock()
		c.latency[seq] = time.Duration(lat)
		c.mu.Unlock()
		if seq > c.acked.Load() {
			c.acked.Store(seq)
		}
		select {
		case c.progress <- struct{}{}:
		default:
		}
	case "result":
		c.result = strings.TrimPrefix(line, "LOAD result ")
	}
}

// waitAcked waits until every client has received seq.
func (c *loadChild) waitAcked(t *testing.T, seq int64) {
	t.Helper()
	for c.acked.Load() < seq {
		select {
		case <-c.progress:
		case <-time.After(30 * time.Second):
			t.Fatalf("event %d did not reach every client (acked up to %d)\n%s", seq, c.acked.Load(), c.stderr)
		}
	}
}

// allLatencies returns, sorted, the time each of the first seqs events took to
// reach every client.
func (c *loadChild) allLatencies(seqs int) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, seqs)
	for seq := int64(1); seq <= int64(seqs); seq++ {
		out = append(out, c.latency[seq])
	}
	slices.Sort(out)
	return out
}

// TestLoadClientProcess is the client side of TestLoad1000, run by it in a
// separate process. Every client reads in its own goroutine. It prints
// "LOAD ready" once every client has its snapshot, "LOAD ack <seq> <ns>" when the
// last client receives seq (with that client's latency), and "LOAD result {…}"
// once every client's connection has ended.
func TestLoadClientProcess(t *testing.T) {
	url := os.Getenv(envLoadChildURL)
	if url == "" {
		t.Skip("run by TestLoad1000")
	}
	n := envInt(t, envLoadClients, 1000)
	seqs := envInt(t, envLoadChildSeqs, 0)
	paced := envInt(t, envLoadChildPaced, 0)
	raiseFileLimit(t, uint64(n)+512)

	acks := make(chan string, 1<<16)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		w := bufio.NewWriter(os.Stdout)
		for line := range acks {
			_, _ = w.WriteString(line)
			if len(acks) == 0 {
				_ = w.Flush()
			}
		}
		_ = w.Flush()
	}()

	arrived := make([]atomic.Int32, seqs+1)
	maxLat := make([]atomic.Int64, seqs+1)
	type clientStats struct {
		frames, missed int64
		end            error
		latencies      []time.Duration // paced phase only
	}
	stats := make([]clientStats, n)

	dialStart := time.Now()
	conns := make([]*fastws.Conn, n)
	var dialWG sync.WaitGroup
	sem := make(chan struct{}, 32) // a burst of 1,000 SYNs overflows the accept queue
	for i := range n {
		dialWG.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d := fastws.Dialer{HandshakeTimeout: time.Minute}
			conn, resp, err := d.Dial(url, nil)
			if err != nil {
				t.Errorf("dial client %d: %v", i, err)
				return
			}
			_ = resp.Body.Close()
			_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
			_, p, err := conn.ReadMessage()
			if err != nil || !strings.HasPrefix(string(p), `{"type":"snapshot"`) {
				t.Errorf("client %d: first frame %.40q, %v; want the snapshot", i, p, err)
				return
			}
			conns[i] = conn
		})
	}
	dialWG.Wait()
	if t.Failed() {
		return
	}
	dialTime := time.Since(dialStart)
	acks <- "LOAD ready\n"

	var readWG sync.WaitGroup
	for i, conn := range conns {
		st := &stats[i]
		st.latencies = make([]time.Duration, 0, paced)
		readWG.Go(func() {
			defer conn.Close()
			next := int64(1)
			for {
				_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
				_, p, err := conn.ReadMessage()
				now := time.Now().UnixNano()
				if err != nil {
					st.end = err
					return
				}
				seq, ts, ok := parseLoadFrame(p)
				if !ok || seq < next || seq > int64(seqs) {
					st.end = fmt.Errorf("bad frame %.60q after seq %d", p, next-1)
					return
				}
				st.missed += seq - next
				next = seq + 1
				st.frames++
				lat := now - ts
				if seq <= int64(paced) {
					st.latencies = append(st.latencies, time.Duration(lat))
				}
				m := &maxLat[seq]
				for old := m.Load(); lat > old && !m.CompareAndSwap(old, lat); old = m.Load() {
				}
				if int(arrived[seq].Add(1)) == n {
					acks <- fmt.Sprintf("LOAD ack %d %d\n", seq, m.Load())
				}
			}
		})
	}
	readWG.Wait()

	res := childResult{Clients: n, DialSeconds: dialTime.Seconds(), MinFrames: int64(seqs)}
	var lats []time.Duration
	for _, st := range stats {
		res.MinFrames = min(res.MinFrames, st.frames)
		res.MaxFrames = max(res.MaxFrames, st.frames)
		res.Missed += st.missed
		if ce := (*fastws.CloseError)(nil); errors.As(st.end, &ce) && ce.Code == fastws.CloseGoingAway {
			res.Closed1001++
		} else if len(res.OtherEnds) < 5 {
			res.OtherEnds = append(res.OtherEnds, fmt.Sprint(st.end))
		}
		lats = append(lats, st.latencies...)
	}
	slices.Sort(lats)
	if len(lats) > 0 {
		res.DeliveryP50, res.DeliveryP99, res.DeliveryMax = pct(lats, 50), pct(lats, 99), lats[len(lats)-1]
	}
	b, _ := json.Marshal(res)
	acks <- "LOAD result " + string(b) + "\n"
	close(acks)
	<-printed
}

// BenchmarkHubFanout publishes events to N clients served through Fiber, each
// reading in its own goroutine, as fast as the slowest client allows. One op is
// one event delivered to every client.
func BenchmarkHubFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			raiseFileLimit(b, uint64(2*n)+512)
			hub := realtime.New(realtime.Options{Logger: quietLogger()})
			srv := startFiber(b, hub, snapshotOf("s"))

			last := make([]atomic.Int64, n) // highest seq each client has read
			var readers sync.WaitGroup
			for i := range n {
				conn := dial(b, srv.url)
				if _, _, err := conn.ReadMessage(); err != nil {
					b.Fatalf("read snapshot: %v", err)
				}
				readers.Go(func() {
					for {
						_, p, err := conn.ReadMessage()
						if err != nil {
							return
						}
						seq, _, ok := parseLoadFrame(p)
						if !ok {
							b.Errorf("bad frame %.60q", p)
							return
						}
						last[i].Store(seq)
					}
				})
			}
			// lowest is the slowest client's progress; recomputed only when the
			// window needs it because scanning every client is not free.
			lowest := int64(0)
			waitSeq := func(seq int64) {
				for lowest < seq {
					low := int64(1<<62 - 1)
					for i := range last {
						low = min(low, last[i].Load())
					}
					lowest = low
					if lowest < seq {
						runtime.Gosched()
					}
				}
			}

			const window = 64
			seq := int64(0)
			start := time.Now()
			for b.Loop() {
				seq++
				waitSeq(seq - window)
				hub.Publish("download", newLoadEvent(seq, time.Now()))
			}
			waitSeq(seq)
			elapsed := time.Since(start)
			if got := hub.Clients(); got != n {
				b.Fatalf("%d clients left of %d: the benchmark overran the send buffers", got, n)
			}
			b.ReportMetric(float64(seq)*float64(n)/elapsed.Seconds(), "frames/s")
			hub.Close(context.Background())
			readers.Wait()
		})
	}
}

// parseLoadFrame picks seq and ts out of a published loadEvent frame. Clients
// on this machine share its two cores with the hub, so they skip a full JSON
// decode to leave the CPU to the code being measured.
func parseLoadFrame(p []byte) (seq, ts int64, ok bool) {
	const prefix = `{"type":"download","data":{"seq":`
	rest, found := bytes.CutPrefix(p, []byte(prefix))
	if !found {
		return 0, 0, false
	}
	seqText, rest, found := bytes.Cut(rest, []byte(`,"ts":`))
	if !found {
		return 0, 0, false
	}
	tsText, _, found := bytes.Cut(rest, []byte(`,`))
	if !found {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseInt(string(seqText), 10, 64)
	ts, err2 := strconv.ParseInt(string(tsText), 10, 64)
	return seq, ts, err1 == nil && err2 == nil
}

// loadAverage is the first figure of /proc/loadavg, or "?" where there is none:
// other work on the machine moves the latency figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// pct returns the p-th percentile of sorted.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
