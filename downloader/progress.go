package downloader

import (
	"context"
	"dashboard/model"
	"sync"
	"time"
)

const (
	progressEvery = 250 * time.Millisecond // at most 4 progress frames a second
	speedWindow   = 5 * time.Second        // speed is averaged over this long
)

// startProgress publishes progress frames for a running download until the
// returned func is called, and keeps its speed and ETA up to date.
func (m *Manager) startProgress(d *download) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		type sample struct {
			at    time.Time
			bytes int64
		}
		samples := []sample{{time.Now(), d.fetched.Load()}}
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		var last Download
		var sent [4]time.Time // when the last four frames went out, oldest first
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				fetched := d.fetched.Load()
				samples = append(samples, sample{now, fetched})
				for len(samples) > 2 && now.Sub(samples[1].at) >= speedWindow {
					samples = samples[1:]
				}
				first := samples[0]
				var speed int64
				if dt := now.Sub(first.at).Seconds(); dt > 0 {
					speed = int64(float64(fetched-first.bytes) / dt)
				}
				d.speed.Store(speed)
				eta := int64(-1)
				if left := d.bytesTotal.Load() - d.bytesDone.Load(); speed > 0 && left >= 0 {
					eta = (left + speed - 1) / speed
				}
				d.eta.Store(eta)

				snap := m.snapshot(d)
				if snap.Status != model.DownloadRunning {
					continue
				}
				if snap.BytesDone == last.BytesDone && snap.CurrentFile == last.CurrentFile &&
					snap.SpeedBps == last.SpeedBps && snap.FilesCompleted == last.FilesCompleted &&
					snap.Connections == last.Connections && *snap.Phase == phaseOf(last) {
					continue // nothing a client would see has changed
				}
				if !sent[0].IsZero() && now.Sub(sent[0]) < time.Second {
					continue // ticker jitter must not make it five in a second
				}
				copy(sent[:], sent[1:])
				sent[len(sent)-1] = now
				last = snap
				m.events.pushProgress(snap)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// eventQueue hands the downloader's frames to the publisher from its own
// goroutine, so a slow publisher never holds up a transfer, and in one order:
// a download's activity rows and the presets frame go out after the download
// frames they follow. Every frame is kept, in order, except that a progress
// frame replaces the previous one for the same download if that one has not
// gone out yet.
type eventQueue struct {
	mu     sync.Mutex
	items  []event
	signal chan struct{}
}

type event struct {
	typ      string
	data     any
	progress int64 // the download id of a progress frame, else 0
}

func newEventQueue() *eventQueue {
	return &eventQueue{signal: make(chan struct{}, 1)}
}

// push queues a frame.
func (q *eventQueue) push(typ string, data any) {
	q.add(event{typ: typ, data: data})
}

// pushProgress queues a progress frame of d, replacing one still waiting.
func (q *eventQueue) pushProgress(d Download) {
	q.add(event{typ: model.FrameDownload, data: d, progress: d.ID})
}

func (q *eventQueue) add(e event) {
	q.mu.Lock()
	replaced := false
	if e.progress != 0 {
		for i := len(q.items) - 1; i >= 0; i-- {
			it := &q.items[i]
			if d, ok := it.data.(Download); !ok || it.typ != model.FrameDownload || d.ID != e.progress {
				continue
			}
			if it.progress != 0 {
				*it = e
				replaced = true
			}
			break
		}
	}
	if !replaced {
		q.items = append(q.items, e)
	}
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) take() []event {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// run publishes queued frames until ctx is done.
func (q *eventQueue) run(ctx context.Context, pub Publisher) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.signal:
		}
		q.flush(pub)
	}
}

// flush publishes whatever is queued.
func (q *eventQueue) flush(pub Publisher) {
	for _, e := range q.take() {
		pub.Publish(e.typ, e.data)
	}
}

func phaseOf(d Download) model.DownloadPhase {
	if d.Phase == nil {
		return ""
	}
	return *d.Phase
}
