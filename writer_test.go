package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dashboard/db"
	"dashboard/lease"
	"dashboard/model"
)

// frames records what the role publishes.
type frames struct {
	mu    sync.Mutex
	modes []model.Mode
}

func (f *frames) Publish(typ string, data any) {
	if typ != model.FrameMode {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.modes = append(f.modes, data.(model.Mode))
}

func (f *frames) last() model.Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.modes) == 0 {
		return model.Mode{}
	}
	return f.modes[len(f.modes)-1]
}

func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The role follows the lease both ways: losing it stops the jobs, reopens
// the store read-only and tells clients; getting it back reverses all that.
func TestWriterRoleFollowsTheLease(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	fast := func(node string) *lease.Lease {
		l, err := lease.New(lease.Config{Path: filepath.Join(dir, "dashboard.lease"), Node: node,
			Renew: 20 * time.Millisecond, Stale: 200 * time.Millisecond, Settle: 20 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	la := fast("pod-a")
	initial, err := la.Acquire(ctx)
	if err != nil || !initial.Writer {
		t.Fatalf("acquire: %+v %v", initial, err)
	}
	store, err := db.Open(ctx, filepath.Join(dir, "dashboard.db"), db.Options{Logger: quiet, Guard: la.Check})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var running, starts, begins atomic.Int32
	pub := &frames{}
	role := newWriterRole(&writerRole{lease: la, store: store, pub: pub, log: quiet, node: "pod-a",
		begin: func(context.Context) error { begins.Add(1); return nil },
		jobs: []func(context.Context) error{func(ctx context.Context) error {
			starts.Add(1)
			running.Add(1)
			defer running.Add(-1)
			<-ctx.Done()
			return nil
		}},
	}, initial)
	roleCtx, stopRole := context.WithCancel(ctx)
	roleDone := make(chan error)
	go func() { roleDone <- role.Run(roleCtx, initial) }()
	runLease := func(l *lease.Lease) (stop func()) {
		c, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { l.Run(c); close(done) }()
		return func() { cancel(); <-done }
	}
	stopA := runLease(la)

	within(t, "the writer's job running", func() bool { return running.Load() == 1 })
	if m := role.Mode(); m.Mode != model.ModeWriter || m.WriterNode() != "pod-a" || m.Node != "pod-a" {
		t.Fatalf("mode = %+v", m)
	}
	if _, err := store.InsertActivity(ctx, model.Activity{Type: model.ActivityDownload, Status: model.ActivityCompleted, Title: "a"}); err != nil {
		t.Fatal(err)
	}

	// pod-a stops renewing (paused); pod-b takes the lease over.
	stopA()
	lb := fast("pod-b")
	if st, _ := lb.Acquire(ctx); st.Writer {
		t.Fatal("pod-b took a fresh lease")
	}
	stopB := runLease(lb)
	within(t, "pod-b takes over", func() bool { return lb.State().Writer })

	// pod-a wakes: its next renewal finds the lease taken.
	stopA = runLease(la)
	within(t, "the role steps down", func() bool { return running.Load() == 0 && store.ReadOnly() })
	if m := pub.last(); m.Mode != model.ModeReadOnly || m.WriterNode() != "pod-b" {
		t.Fatalf("last mode frame = %+v", m)
	}
	_, err = store.InsertActivity(ctx, model.Activity{Type: model.ActivityDownload, Status: model.ActivityCompleted, Title: "refused"})
	if e := model.AsError(err); e == nil || e.Code != model.CodeReadOnly {
		t.Fatalf("write after losing the lease: %v", err)
	}
	if list, err := store.ListActivity(ctx, model.ActivityFilter{}); err != nil || len(list) != 1 {
		t.Fatalf("reads after losing the lease: %v %v", list, err)
	}

	// pod-b stops cleanly: pod-a takes the lease back and writes again.
	stopB()
	lb.Release()
	within(t, "the role takes over again", func() bool { return running.Load() == 1 && !store.ReadOnly() && role.Mode().Mode == model.ModeWriter })
	if starts.Load() != 2 || begins.Load() != 1 {
		t.Errorf("jobs started %d times, begin ran %d times; want 2 and 1 (the first start had begun already)", starts.Load(), begins.Load())
	}
	if m := pub.last(); m.Mode != model.ModeWriter || m.WriterNode() != "pod-a" {
		t.Fatalf("last mode frame = %+v", m)
	}
	if _, err := store.InsertActivity(ctx, model.Activity{Type: model.ActivityDownload, Status: model.ActivityCompleted, Title: "b"}); err != nil {
		t.Fatal(err)
	}

	stopRole()
	if err := <-roleDone; err != nil {
		t.Fatal(err)
	}
	if running.Load() != 0 {
		t.Error("the jobs outlived the role")
	}
	stopA()
	la.Release()
}
