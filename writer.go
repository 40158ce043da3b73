package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"dashboard/db"
	"dashboard/lease"
	"dashboard/model"
)

// writerRole is what changes when this dashboard becomes the volume's
// writer or stops being it: the store is reopened for writing or
// read-only, the jobs only the writer runs (downloads, the ComfyUI watcher's
// activity, retention) start or stop, and clients get a "mode" frame.
type writerRole struct {
	lease *lease.Lease
	store *db.Store
	pub   interface{ Publish(typ string, data any) }
	log   *slog.Logger
	node  string
	// begin makes the writes a dashboard makes on becoming the writer, after
	// the store is writable and before the jobs start.
	begin func(ctx context.Context) error
	// jobs run while this dashboard is the writer, each until its context ends.
	jobs []func(ctx context.Context) error

	mu   sync.Mutex
	mode model.Mode
}

// Mode is the mode clients are told: writer only once the store is
// writable and the jobs run, read-only from the moment the lease is lost.
func (r *writerRole) Mode() model.Mode {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mode
}

// newWriterRole returns the role in the state the dashboard starts in, so
// the first request already sees the right mode.
func newWriterRole(r *writerRole, initial lease.State) *writerRole {
	r.setMode(initial)
	return r
}

// Run follows the lease until ctx is done, then stops the jobs. initial is
// the state the dashboard started in; when it is the writer, the store is
// already writable and begin has run.
func (r *writerRole) Run(ctx context.Context, initial lease.State) error {
	var stop func()
	if initial.Writer {
		stop = r.startJobs()
	}
	for {
		select {
		case <-ctx.Done():
			if stop != nil {
				stop()
			}
			return nil
		case st := <-r.lease.Changes():
			switch {
			case st.Writer && stop == nil:
				if err := r.promote(ctx); err != nil {
					// Give the lease back so a dashboard that can write takes
					// it; this one tries again when it finds the lease free.
					r.log.Error("could not become the writer; giving the lease back", "err", err)
					r.lease.Release()
					continue
				}
				stop = r.startJobs()
				r.log.Info("this dashboard is the volume's writer now", "node", r.node)
			case !st.Writer && stop != nil:
				// Clients learn at once; the lease already refuses writes.
				r.setMode(st)
				stop()
				stop = nil
				if err := r.store.Demote(ctx); err != nil && ctx.Err() == nil {
					r.log.Error("could not reopen the database read-only", "err", err)
				}
				r.log.Warn("this dashboard is read-only now", "writer", st.Holder)
			}
			r.setMode(st)
		}
	}
}

func (r *writerRole) promote(ctx context.Context) error {
	if err := r.store.Promote(ctx); err != nil {
		return err
	}
	return r.begin(ctx)
}

// startJobs runs the writer's jobs; the function it returns stops them and
// waits until they have.
func (r *writerRole) startJobs() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, job := range r.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := job(ctx); err != nil && !errors.Is(err, context.Canceled) {
				r.log.Warn("background job ended with an error", "err", err)
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// setMode records the mode st means and tells clients when it changed.
func (r *writerRole) setMode(st lease.State) {
	m := model.Mode{Mode: model.ModeReadOnly, Node: r.node}
	if st.Writer {
		m.Mode = model.ModeWriter
	}
	if st.Holder != "" {
		m.Writer = &st.Holder
	}
	r.mu.Lock()
	changed := r.mode.Mode != m.Mode || r.mode.WriterNode() != m.WriterNode()
	r.mode = m
	r.mu.Unlock()
	if changed {
		r.pub.Publish(model.FrameMode, m)
	}
}
