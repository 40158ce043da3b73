package lease

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dashboard/model"
)

// clock is one machine's clock: tests move each dashboard's on its own,
// and sleeping moves it.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps int
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps++
	c.mu.Unlock()
	c.Add(d)
	return ctx.Err()
}

func (c *clock) Sleeps() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sleeps
}

type dash struct {
	*Lease
	clock *clock
	logs  *strings.Builder
}

// newDash is one dashboard on node, with a clock of its own that starts at
// an arbitrary time: the machines' clocks never agree, and must not need to.
func newDash(t *testing.T, path, node string, start time.Time) *dash {
	t.Helper()
	c := &clock{t: start}
	logs := &strings.Builder{}
	var mu sync.Mutex
	l, err := New(Config{Path: path, Node: node, Now: c.Now, Sleep: c.Sleep,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.unlock)
	return &dash{Lease: l, clock: c, logs: logs}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func leasePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "dashboard.lease")
}

func acquire(t *testing.T, d *dash) State {
	t.Helper()
	st, err := d.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func fileRecord(t *testing.T, path string) record {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("lease file %q: %v", raw, err)
	}
	return r
}

// latest drains Changes and returns the last state sent, or false.
func latest(d *dash) (State, bool) {
	select {
	case st := <-d.Changes():
		return st, true
	default:
		return State{}, false
	}
}

var (
	t1990 = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	t2050 = time.Date(2050, 6, 1, 12, 0, 0, 0, time.UTC)
)

func TestFreeLeaseIsTakenAtOnce(t *testing.T) {
	path := leasePath(t)
	a := newDash(t, path, "pod-a", t2050)
	if st := acquire(t, a); st != (State{Writer: true, Holder: "pod-a"}) {
		t.Fatalf("state = %+v", st)
	}
	if a.clock.Sleeps() != 0 {
		t.Error("taking a lease nobody held waited")
	}
	if r := fileRecord(t, path); r.Node != "pod-a" || r.Holder != a.id {
		t.Errorf("lease file = %+v", r)
	}
	if err := a.Check(context.Background()); err != nil {
		t.Errorf("Check of the holder: %v", err)
	}
	if st, ok := latest(a); !ok || !st.Writer {
		t.Errorf("no change announced: %+v %v", st, ok)
	}
}

func TestSecondDashboardIsReadOnlyAndNamesTheWriter(t *testing.T) {
	path := leasePath(t)
	a := newDash(t, path, "pod-a", t2050)
	acquire(t, a)
	b := newDash(t, path, "pod-b", t1990)
	if st := acquire(t, b); st != (State{Holder: "pod-a"}) {
		t.Fatalf("second dashboard's state = %+v", st)
	}
	err := b.Check(context.Background())
	if e := model.AsError(err); e == nil || e.Code != model.CodeReadOnly || !strings.Contains(e.Message, "pod-a") {
		t.Fatalf("Check of a reader = %v", err)
	}
	// The writer renews; as long as it does, the reader waits, however long.
	for range 20 {
		a.clock.Add(DefaultRenew)
		a.step(context.Background())
		b.clock.Add(DefaultRenew)
		b.step(context.Background())
	}
	if b.State().Writer || !a.State().Writer {
		t.Fatalf("a renewed lease was taken: a %+v, b %+v", a.State(), b.State())
	}
	if r := fileRecord(t, path); r.Counter != 21 {
		t.Errorf("counter = %d after 20 renewals", r.Counter)
	}
}

// Staleness is the counter not changing for Stale on the reader's own
// clock: the writer's clock plays no part.
func TestStaleLeaseIsTakenOver(t *testing.T) {
	path := leasePath(t)
	a := newDash(t, path, "pod-a", t2050)
	acquire(t, a)
	b := newDash(t, path, "pod-b", t1990)
	acquire(t, b)
	latest(b)

	// pod-a stops renewing (its machine died). Just under Stale: nothing.
	for range 5 {
		b.clock.Add(5 * time.Second)
		b.step(context.Background())
	}
	b.clock.Add(4 * time.Second)
	b.step(context.Background())
	if b.State().Writer {
		t.Fatal("took the lease after 29 s")
	}
	b.clock.Add(time.Second)
	b.step(context.Background())
	if st := b.State(); st != (State{Writer: true, Holder: "pod-b"}) {
		t.Fatalf("after 30 s unchanged: %+v\n%s", st, b.logs)
	}
	if b.clock.Sleeps() != 1 {
		t.Errorf("claim waited %d times, want once (claim, wait, re-read)", b.clock.Sleeps())
	}
	if st, ok := latest(b); !ok || !st.Writer {
		t.Errorf("takeover not announced: %+v", st)
	}
	if r := fileRecord(t, path); r.Node != "pod-b" || r.Counter != 2 {
		t.Errorf("lease file = %+v", r)
	}

	// pod-a wakes up (it was paused, not dead): its next look ends its
	// writing, and Check refuses at once, naming pod-b.
	a.clock.Add(time.Minute)
	err := a.Check(context.Background())
	if e := model.AsError(err); e == nil || e.Code != model.CodeReadOnly || !strings.Contains(e.Message, "pod-b") {
		t.Fatalf("the paused writer's Check = %v", err)
	}
	if st := a.State(); st != (State{Holder: "pod-b"}) {
		t.Fatalf("paused writer's state = %+v", st)
	}
	if a.lockFile != nil {
		t.Error("the old writer kept the lock file's lock")
	}
	if r := fileRecord(t, path); r.Holder != b.id {
		t.Errorf("the old writer wrote the lease again: %+v", r)
	}
}

// A writer checks the file at every renewal and steps down on finding it
// taken, without waiting for a write.
func TestWriterStepsDownAtRenewalWhenTaken(t *testing.T) {
	path := leasePath(t)
	a := newDash(t, path, "pod-a", t2050)
	acquire(t, a)
	latest(a)
	b := newDash(t, path, "pod-b", t1990)
	if err := b.write(record{Node: "pod-b", Holder: b.id, Counter: 99}); err != nil {
		t.Fatal(err)
	}
	a.clock.Add(DefaultRenew)
	a.step(context.Background())
	if st, ok := latest(a); !ok || st != (State{Holder: "pod-b"}) {
		t.Fatalf("change = %+v %v", st, ok)
	}
	if r := fileRecord(t, path); r.Holder != b.id {
		t.Error("the writer renewed over a lease that was not its own")
	}
	if !strings.Contains(a.logs.String(), "lost the writer lease") {
		t.Errorf("not logged:\n%s", a.logs)
	}
}

// A restarted dashboard on the same node finds the lock file unlocked and
// takes its node's lease at once; while the old one lives, it waits.
func TestSameNodeRestartTakesLeaseAtOnce(t *testing.T) {
	path := leasePath(t)
	old := newDash(t, path, "pod-a", t2050)
	acquire(t, old)

	alive := newDash(t, path, "pod-a", t2050)
	if st := acquire(t, alive); st.Writer {
		t.Fatal("a second dashboard on the node took the lease from a live one")
	}
	alive.unlock()

	old.unlock() // the old process dies: the kernel drops its flock
	fresh := newDash(t, path, "pod-a", t1990)
	if st := acquire(t, fresh); st != (State{Writer: true, Holder: "pod-a"}) {
		t.Fatalf("restarted dashboard's state = %+v\n%s", st, fresh.logs)
	}
	if fresh.clock.Now().Sub(t1990) >= DefaultStale {
		t.Error("the restart waited out the staleness window")
	}
	if r := fileRecord(t, path); r.Holder != fresh.id {
		t.Errorf("lease file = %+v", r)
	}
	if !strings.Contains(fresh.logs.String(), "previous dashboard is gone") {
		t.Errorf("reason not logged:\n%s", fresh.logs)
	}
	// Another node's dashboard gets no such shortcut.
	fresh.unlock()
	other := newDash(t, path, "pod-b", t1990)
	if st := acquire(t, other); st.Writer {
		t.Fatal("another node took a fresh lease at once")
	}
}

// When two readers claim a stale lease at the same moment, exactly one wins.
func TestExactlyOneOfTwoClaimersWins(t *testing.T) {
	for round := range 20 {
		path := leasePath(t)
		dead := newDash(t, path, "pod-dead", t2050)
		acquire(t, dead)
		dead.unlock()

		var barrier sync.WaitGroup
		barrier.Add(2)
		claimers := []*dash{newDash(t, path, "pod-b", t1990), newDash(t, path, "pod-c", t2050)}
		slept := make([]atomic.Bool, len(claimers))
		for i, c := range claimers {
			acquire(t, c)
			// Both claims that were written are written before either
			// re-reads; a claimer that found the other's claim before its
			// rename gave up without waiting.
			c.cfg.Sleep = func(context.Context, time.Duration) error {
				slept[i].Store(true)
				barrier.Done()
				barrier.Wait()
				return nil
			}
		}
		// Both have read the stale lease (a claimer that reads after the
		// other's claim sees the lease change and keeps waiting instead).
		stale, staleRaw, err := claimers[0].read()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i, c := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.claim(context.Background(), stale, staleRaw, "stale")
				if !slept[i].Load() {
					barrier.Done()
				}
			}()
		}
		wg.Wait()
		winners := 0
		for _, c := range claimers {
			if c.State().Writer {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners", round, winners)
		}
		r := fileRecord(t, path)
		for _, c := range claimers {
			if c.State().Writer != (r.Holder == c.id) {
				t.Fatalf("round %d: %s thinks writer=%v, file says %+v", round, c.cfg.Node, c.State().Writer, r)
			}
			if !c.State().Writer && c.State().Holder != r.Node {
				t.Errorf("round %d: loser names %q, file %q", round, c.State().Holder, r.Node)
			}
		}
	}
}

// A claimer that read the stale lease before another's claim, and gets to
// write its own only after that one has won (a slow network filesystem),
// must not take the lease: it reads the lease again just before its rename
// and finds it claimed, so the winner goes on alone.
func TestLateClaimNeverMakesASecondWriter(t *testing.T) {
	path := leasePath(t)
	dead := newDash(t, path, "pod-dead", t2050)
	acquire(t, dead)
	dead.unlock()
	b := newDash(t, path, "pod-b", t1990)
	c := newDash(t, path, "pod-c", t2050)
	acquire(t, b)
	acquire(t, c)
	// c reads the stale lease before b's claim ...
	stale, staleRaw, _ := c.read()
	b.clock.Add(DefaultStale)
	b.step(context.Background())
	if !b.State().Writer {
		t.Fatalf("setup: b %+v", b.State())
	}
	// ... and claims after b won.
	c.clock.Add(DefaultStale)
	c.claim(context.Background(), stale, staleRaw, "test")
	if c.State().Writer {
		t.Fatalf("the late claimer is a writer too: b %+v, c %+v", b.State(), c.State())
	}
	if r := fileRecord(t, path); r.Holder != b.id {
		t.Fatalf("the late claim replaced the winner's lease: %+v", r)
	}
	for i := 0; i < 3; i++ {
		b.clock.Add(DefaultRenew)
		b.step(context.Background())
		c.clock.Add(DefaultRenew)
		c.step(context.Background())
		if !b.State().Writer || c.State().Writer {
			t.Fatalf("renewal %d: b %+v, c %+v", i, b.State(), c.State())
		}
	}
}

// Release removes the lease so a reader takes over at its next look.
func TestReleaseHandsOverAtOnce(t *testing.T) {
	path := leasePath(t)
	a := newDash(t, path, "pod-a", t2050)
	acquire(t, a)
	b := newDash(t, path, "pod-b", t1990)
	acquire(t, b)
	a.Release()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("lease after Release: %v", err)
	}
	b.clock.Add(DefaultRenew)
	b.step(context.Background())
	if !b.State().Writer || b.clock.Sleeps() != 0 {
		t.Fatalf("after the writer released: %+v, %d waits", b.State(), b.clock.Sleeps())
	}
	// A release by a dashboard that no longer holds the lease removes nothing.
	a.Release()
	if r := fileRecord(t, path); r.Holder != b.id {
		t.Fatalf("lease = %+v", r)
	}
}

// A writer that cannot renew for most of the staleness window steps down:
// the others will soon take the lease, and two writers are worse than none.
func TestWriterThatCannotRenewStepsDown(t *testing.T) {
	path := leasePath(t)
	a := newDash(t, path, "pod-a", t2050)
	acquire(t, a)
	// Neither readable nor replaceable by rename.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a.clock.Add(DefaultRenew)
		a.step(context.Background())
	}
	if !a.State().Writer {
		t.Fatal("stepped down after 15 s of failed renewals")
	}
	a.clock.Add(DefaultRenew)
	a.step(context.Background())
	if a.State().Writer {
		t.Fatalf("still writer after 20 s of failed renewals\n%s", a.logs)
	}
	if n := strings.Count(a.logs.String(), "could not renew the writer lease"); n != 1 {
		t.Errorf("renewal failure logged %d times, want once", n)
	}
	// Once the file is writable again, this dashboard takes its lease back.
	os.Remove(path)
	a.clock.Add(DefaultRenew)
	a.step(context.Background())
	if !a.State().Writer {
		t.Fatalf("did not take the lease back\n%s", a.logs)
	}
}

// Content that is not a lease names nobody and goes stale like any other.
func TestGarbageLeaseGoesStale(t *testing.T) {
	path := leasePath(t)
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newDash(t, path, "pod-b", t1990)
	if st := acquire(t, b); st != (State{}) {
		t.Fatalf("state = %+v", st)
	}
	if err := b.Check(context.Background()); model.ErrorCode(err) != model.CodeReadOnly {
		t.Fatalf("Check = %v", err)
	}
	b.clock.Add(DefaultStale)
	b.step(context.Background())
	if !b.State().Writer {
		t.Fatal("a stale unreadable lease was not taken")
	}
}

// Run renews on its own and returns when asked.
func TestRunRenews(t *testing.T) {
	path := leasePath(t)
	l, err := New(Config{Path: path, Node: "pod-a", Renew: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if st, _ := l.Acquire(context.Background()); !st.Writer {
		t.Fatal("not writer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for fileRecord(t, path).Counter < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := fileRecord(t, path).Counter; c < 5 {
		t.Fatalf("counter %d: Run did not renew", c)
	}
}

// A claim whose rename is held up (a slow network filesystem) may land after
// another claimer has re-read and won. It then waits until that one has
// renewed, found the lease taken and stepped down, before it writes: the
// two are never writers at once.
func TestSlowClaimRenameWaitsForTheWinnerToStepDown(t *testing.T) {
	ctx := context.Background()
	path := leasePath(t)
	dead := newDash(t, path, "pod-dead", t2050)
	acquire(t, dead)
	dead.unlock()
	b := newDash(t, path, "pod-b", t1990)
	c := newDash(t, path, "pod-c", t2050)
	acquire(t, b)
	acquire(t, c)
	stale, staleRaw, _ := c.read()
	beforeClaimRename = func(l *Lease) {
		if l != c.Lease {
			return
		}
		// While c's rename hangs, b claims and wins.
		b.clock.Add(DefaultStale)
		b.step(ctx)
		if !b.State().Writer {
			t.Fatalf("setup: b %+v", b.State())
		}
		c.clock.Add(DefaultSettle) // the rename took this long
	}
	t.Cleanup(func() { beforeClaimRename = nil })
	// Time runs on while c waits: b renews every DefaultRenew since it won,
	// and c's rename landed DefaultSettle after that.
	sinceWin := DefaultSettle
	const tick = 100 * time.Millisecond
	c.cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		for waited := time.Duration(0); waited < d; waited += tick {
			sinceWin += tick
			c.clock.Add(tick)
			b.clock.Add(tick)
			if sinceWin%DefaultRenew == 0 {
				b.step(ctx)
			}
		}
		return ctx.Err()
	}
	c.clock.Add(DefaultStale)
	c.claim(ctx, stale, staleRaw, "test")
	if !c.State().Writer || b.State().Writer {
		t.Fatalf("when the slow claim ended: b %+v, c %+v; want c alone (b steps down at its renewal %s after it won)", b.State(), c.State(), DefaultRenew)
	}
	if !strings.Contains(c.logs.String(), "rename was slow") {
		t.Errorf("the slow rename was not noticed:\n%s", c.logs.String())
	}
}
