package downloader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A pipe is one attempt at a file's missing bytes. It hands ranges to
// connections (a connection that finishes takes the next piece; when no
// piece is left, an idle connection splits the slowest range), lets each
// write its bytes at their offsets into the .part, and keeps what was
// written in memory until SHA-256 can take it in file order. That window is
// bounded: a connection that runs more than a window ahead of the hash waits,
// so memory stays bounded whatever the network does.

const (
	bufSize   = 1 << 20 // one read buffer; also one write(2)
	diskChunk = 1 << 20 // what the hash reads back from disk at a time
	minPiece  = 1 << 20
	maxPiece  = 16 << 20
	// minSplit is the smallest range a split leaves to either side: below
	// that, a new request costs more than it saves.
	minSplit = 512 << 10
	handOff  = 100 * time.Millisecond // longest a partly filled buffer waits for more bytes
	// saveEvery bounds how long fetched bytes wait to be named in the state
	// file (it is also saved every few pieces).
	saveEvery = time.Second
)

// pieceSize is the range a connection asks for at a time: small enough that
// all connections work within the hash window, large enough that the
// request round trips stay a small share.
func pieceSize(window int64, conns int) int64 {
	p := window / int64(2*max(conns, 1))
	p = min(max(p, minPiece), maxPiece)
	return p &^ (minPiece - 1)
}

type pipe struct {
	t       *transfer
	ctx     context.Context
	cancel  context.CancelCauseFunc
	piece   int64
	window  int64
	single  bool   // one stream from a server that ignores Range: a failure ends the attempt
	ifRange string // sent with range requests, so a changed file answers 200
	conns   int    // connections; with one, a range is all that is missing
	saveAt  int64  // fetched bytes that make the state file be saved

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	size     int64         // -1 until a stream of unknown length ends
	pending  []pending     // not yet handed out, by offset
	active   []*work
	done     spans // on disk: what the state file names
	prior    spans // on disk from before this attempt and not hashed yet: read back
	parked   map[int64]*chunk
	hashed   int64
	waiting  int // connections waiting for work or for the window
	open     int // connections with a request open
	err      error
	complete bool // every byte is hashed
	unsaved  int64
	saveNow  chan struct{}
}

// pending is a range no connection has.
type pending struct {
	span
	failures  int       // attempts at it that brought nothing
	notBefore time.Time // its backoff
}

// work is a range one connection is fetching. to shrinks when the range is
// split or taken over, and the owner stops there.
type work struct {
	began    int64 // where the owner started
	next     int64 // the owner has claimed the bytes before next
	to       int64
	failures int
	started  time.Time
	lastByte atomic.Int64 // unix nanos of the last byte read: a stall is judged by it
	blocked  bool         // the owner waits for the hash window: not a stall
	cancel   context.CancelCauseFunc
}

type chunk struct {
	buf *[]byte
	n   int
}

var (
	errStalled = errors.New("stalled")
	errSlow    = errors.New("delivered nothing while other connections waited")
	errCut     = errors.New("connection cut")
)

func newPipe(ctx context.Context, t *transfer, size int64, single bool, conns int, ifRange string) *pipe {
	pctx, cancel := context.WithCancelCause(ctx)
	p := &pipe{
		t: t, ctx: pctx, cancel: cancel, size: size, single: single, ifRange: ifRange,
		window:  t.cfg.window,
		piece:   pieceSize(t.cfg.window, conns),
		conns:   conns,
		changed: make(chan struct{}),
		done:    slices.Clone(t.done),
		prior:   t.done.after(t.hashed),
		parked:  map[int64]*chunk{},
		hashed:  t.hashed,
		saveNow: make(chan struct{}, 1),
	}
	// A quarter of a piece per connection: with the bytes in flight, a
	// crash costs about a range per connection at most.
	p.saveAt = max(p.piece*int64(conns)/4, minPiece)
	end := size
	if end < 0 {
		end = math.MaxInt64
	}
	for _, g := range t.done.gaps(end) {
		p.pending = append(p.pending, pending{span: g})
	}
	return p
}

// run fetches the pending ranges over p.conns connections and hashes the
// file to its end. first, when not nil, is the probe's answer: its body
// holds the first pending bytes, and firstCancel ends it.
func (p *pipe) run(first *http.Response, firstCancel context.CancelCauseFunc) error {
	defer p.cancel(nil)
	stop := make(chan struct{})
	var bg, cw sync.WaitGroup
	bg.Go(p.hashLoop)
	bg.Go(func() { p.monitor(stop) })
	bg.Go(func() { p.saver(stop) })

	var w0 *work
	if first != nil {
		p.mu.Lock()
		if len(p.pending) > 0 {
			w0 = p.carveLocked(0, time.Now())
		}
		p.mu.Unlock()
		if w0 == nil {
			first.Body.Close()
			firstCancel(nil)
			first = nil
		}
	}
	for i := range p.conns {
		cw.Go(func() {
			if i == 0 && first != nil {
				p.connection(w0, first, firstCancel)
			} else {
				p.connection(nil, nil, nil)
			}
		})
	}
	cw.Wait()
	// Every range is fetched or the attempt failed; the hash catches up.
	p.t.meter.conns.Store(0)
	p.mu.Lock()
	for p.err == nil && p.ctx.Err() == nil && !p.complete {
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.ctx.Done():
		}
		p.mu.Lock()
	}
	err, complete := p.err, p.complete
	p.mu.Unlock()
	if !complete && err == nil {
		err = context.Cause(p.ctx)
	}
	p.cancel(err)
	close(stop)
	bg.Wait()
	if !complete {
		p.save()
	}
	p.t.done, p.t.hashed = p.done, p.hashed
	p.t.meter.verifying.Store(false)
	return err
}

func (p *pipe) broadcastLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *pipe) failLocked(err error) {
	if p.err == nil {
		p.err = err
		p.cancel(err)
		for _, w := range p.active {
			if w.cancel != nil {
				w.cancel(err) // the probe's answer is not under p.ctx
			}
		}
	}
	p.broadcastLocked()
}

// connection fetches ranges until none is left or the attempt fails.
func (p *pipe) connection(w *work, resp *http.Response, cancel context.CancelCauseFunc) {
	for {
		if w == nil {
			if w = p.take(); w == nil {
				return
			}
		}
		err := p.fetch(w, resp, cancel)
		resp, cancel = nil, nil
		if !p.release(w, err) {
			return
		}
		w = nil
	}
}

// take hands out the next range: the lowest piece not handed out whose
// backoff is over and which lies within the hash window; failing that,
// when no piece is left, half of the range that would take longest. It
// waits while there is nothing to take, and returns nil when everything
// is fetched or the attempt has failed.
func (p *pipe) take() *work {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.err != nil || p.ctx.Err() != nil || (len(p.pending) == 0 && len(p.active) == 0) {
			return nil
		}
		now := time.Now()
		limit := p.hashed + p.window
		var wake time.Time
		for i := range p.pending {
			pd := p.pending[i]
			if pd.from >= limit {
				break
			}
			if pd.notBefore.After(now) {
				if wake.IsZero() || pd.notBefore.Before(wake) {
					wake = pd.notBefore
				}
				continue
			}
			return p.carveLocked(i, now)
		}
		if len(p.pending) == 0 {
			if w := p.splitLocked(now, limit); w != nil {
				return w
			}
		}
		p.waiting++
		ch := p.changed
		p.mu.Unlock()
		var timer *time.Timer
		var ring <-chan time.Time
		if !wake.IsZero() {
			timer = time.NewTimer(wake.Sub(now))
			ring = timer.C
		}
		select {
		case <-ch:
		case <-ring:
		case <-p.ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		p.mu.Lock()
		p.waiting--
	}
}

// carveLocked hands out a piece of pending range i; a single stream takes
// all of it.
func (p *pipe) carveLocked(i int, now time.Time) *work {
	pd := p.pending[i]
	to := pd.to
	if p.conns > 1 {
		to = min(pd.to, pd.from+p.piece)
	}
	w := &work{began: pd.from, next: pd.from, to: to, failures: pd.failures, started: now}
	w.lastByte.Store(now.UnixNano())
	if to == pd.to {
		p.pending = slices.Delete(p.pending, i, i+1)
	} else {
		p.pending[i].from = to
	}
	p.active = append(p.active, w)
	return w
}

// splitLocked gives half of the range that would take longest to a new
// owner, so a slow or stalled connection cannot hold the file up.
func (p *pipe) splitLocked(now time.Time, limit int64) *work {
	var victim *work
	worst := -1.0
	for _, w := range p.active {
		rem := w.to - w.next
		if rem < 2*minSplit || w.next+rem/2 >= limit {
			continue
		}
		eta := math.Inf(1)
		if el := now.Sub(w.started).Seconds(); el > 0 && w.next > w.began {
			eta = float64(rem) / (float64(w.next-w.began) / el)
		}
		if eta > worst {
			victim, worst = w, eta
		}
	}
	if victim == nil {
		return nil
	}
	rem := victim.to - victim.next
	mid := (victim.next + rem/2) &^ (64<<10 - 1)
	if mid <= victim.next {
		mid = victim.next + rem/2
	}
	w := &work{began: mid, next: mid, to: victim.to, started: now}
	w.lastByte.Store(now.UnixNano())
	victim.to = mid
	p.active = append(p.active, w)
	p.t.log.Debug("download range split", "path", p.t.cfg.file.path, "at", mid, "rest", w.to-mid)
	return w
}

// release ends a connection's turn at w. What is left of w goes back to be
// handed out again, after a backoff that grows while it keeps failing; a
// range that keeps failing, or a failure that retrying cannot mend, fails
// the attempt. It reports whether the connection should go on.
func (p *pipe) release(w *work, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active = slices.DeleteFunc(p.active, func(x *work) bool { return x == w })
	p.broadcastLocked()
	if p.err != nil || p.ctx.Err() != nil {
		return false
	}
	var fe *fetchError
	if err != nil && (!errors.As(err, &fe) || !fe.transient) {
		p.failLocked(err) // a full disk, say: whatever is left of w
		return false
	}
	if w.next >= w.to {
		return true
	}
	if err == nil {
		err = transient("%s: the server sent less than was asked for", p.t.cfg.file.path)
	}
	if !errors.As(err, &fe) || !fe.transient || p.single {
		p.failLocked(err)
		return false
	}
	failures := w.failures + 1
	if w.next > w.began {
		failures = 1 // a flaky link that keeps moving is not out of retries
	}
	if failures > p.t.cfg.maxRetries {
		p.failLocked(transient("%s: gave up after %d attempts: %s", p.t.cfg.file.path, failures, fe.Error()))
		return false
	}
	wait := time.Duration(0)
	if !fe.immediate {
		wait = p.t.backoff(failures)
		if fe.retryAfter > 0 {
			wait = min(fe.retryAfter, maxWait)
		}
	}
	pd := pending{span: span{w.next, w.to}, failures: failures, notBefore: time.Now().Add(wait)}
	i, _ := slices.BinarySearchFunc(p.pending, pd.from, func(x pending, off int64) int { return cmp.Compare(x.from, off) })
	p.pending = slices.Insert(p.pending, i, pd)
	p.t.log.Warn("download range retrying", "path", p.t.cfg.file.path, "from", w.next, "attempt", failures, "wait", wait.String(), "err", fe.Error())
	return true
}

// fetch reads w's bytes from resp, or from range requests when resp is nil
// or ends before w does, and writes them at their offsets.
func (p *pipe) fetch(w *work, resp *http.Response, cancel context.CancelCauseFunc) error {
	for {
		if resp == nil {
			var reqCtx context.Context
			reqCtx, cancel = context.WithCancelCause(p.ctx)
			r, err := p.request(reqCtx, cancel, w)
			if err != nil || r == nil {
				cancel(nil)
				return err
			}
			resp = r
		}
		more, err := p.read(w, resp, cancel)
		resp.Body.Close()
		cancel(nil)
		if err != nil || !more {
			return err
		}
		resp = nil // the answer ended where it said, before the range: ask for the rest
	}
}

// request asks for the rest of w; nil when nothing is left of it.
func (p *pipe) request(ctx context.Context, cancel context.CancelCauseFunc, w *work) (*http.Response, error) {
	w.lastByte.Store(time.Now().UnixNano())
	p.mu.Lock()
	w.cancel = cancel
	from, to, size := w.next, w.to, p.size
	p.mu.Unlock()
	if from >= to {
		return nil, nil
	}
	last := to - 1
	if size < 0 || to >= size {
		last = -1 // to the end: what a single stream asks
	}
	resp, gen, err := p.t.src.get(ctx, from, last, p.ifRange)
	if err != nil {
		return nil, transportError(p.t.cfg.file, context.Cause(ctx), err, p.t.cfg.stallTimeout)
	}
	if err := p.accept(ctx, resp, from, gen); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// read takes one answer's bytes into w. more says the answer ended, as
// it said it would, before w's end.
func (p *pipe) read(w *work, resp *http.Response, cancel context.CancelCauseFunc) (more bool, err error) {
	reqCtx := resp.Request.Context()
	p.mu.Lock()
	w.cancel = cancel
	p.mu.Unlock()
	w.lastByte.Store(time.Now().UnixNano())
	// Where the answer's bytes end (exclusive); -1: at the end of the file.
	answerEnd := int64(-1)
	if resp.StatusCode == http.StatusPartialContent {
		if _, end, _, ok := parseContentRange(resp.Header.Get("Content-Range")); ok {
			answerEnd = end + 1
		}
	}
	p.opened(1)
	defer p.opened(-1)
	for {
		buf, room := p.acquire(w)
		if buf == nil {
			return false, nil // shrunk by a split, or the attempt is over
		}
		n, rerr := p.fill(resp.Body, (*buf)[:min(int64(len(*buf)), room)], w)
		var off, m int64
		if n > 0 {
			off, m = p.claim(w, int64(n))
		}
		if m > 0 {
			if err := p.write((*buf)[:m], off); err != nil {
				p.t.cfg.bufs.Put(buf)
				p.unclaim(w, off)
				return false, diskError("write "+p.t.part.name(), err)
			}
			p.submit(off, buf, m)
		} else {
			p.t.cfg.bufs.Put(buf)
		}
		if m < int64(n) {
			return false, nil // the rest of the range is another connection's now
		}
		p.mu.Lock()
		next, to := w.next, w.to
		p.mu.Unlock()
		if next >= to && to != math.MaxInt64 {
			if rerr == nil && answerEnd == to {
				var b [1]byte
				resp.Body.Read(b[:]) // see the end of the answer, so its connection is reused
			}
			return false, nil
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF) && to == math.MaxInt64:
			p.setSize(next) // a stream of unknown length has ended
			return false, nil
		case errors.Is(rerr, io.EOF) && next == answerEnd:
			return true, nil
		case errors.Is(rerr, io.EOF):
			return false, transportError(p.t.cfg.file, nil, fmt.Errorf("%w after %d of %d bytes", errCut, next, to), 0)
		default:
			return false, transportError(p.t.cfg.file, context.Cause(reqCtx), rerr, p.t.cfg.stallTimeout)
		}
	}
}

// accept checks a range request's answer.
func (p *pipe) accept(ctx context.Context, resp *http.Response, from int64, gen int) error {
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		start, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != from || (p.size >= 0 && total >= 0 && total != p.size) {
			return errChanged
		}
		return nil
	case resp.StatusCode == http.StatusOK && p.single && from == 0 && (p.size < 0 || resp.ContentLength < 0 || resp.ContentLength == p.size):
		// A server that ignores ranges sends the whole file, which is
		// what a single stream asks for when it starts at 0.
		return nil
	case resp.StatusCode == http.StatusOK:
		// The server stopped honouring ranges, or If-Range said its copy changed.
		return errChanged
	case p.t.src.expired(resp):
		rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
		v, err := p.t.src.refresh(rctx, gen)
		if err != nil {
			var fe *fetchError
			if errors.As(err, &fe) {
				return err
			}
			return transportError(p.t.cfg.file, context.Cause(ctx), err, p.t.cfg.stallTimeout)
		}
		if v != "" && p.t.st.Validator != "" && v != p.t.st.Validator {
			return errChanged
		}
		p.t.log.Info("download link renewed", "path", p.t.cfg.file.path, "status", resp.StatusCode)
		e := transient("%s: the download link expired (%d) and was renewed", p.t.cfg.file.path, resp.StatusCode)
		e.immediate = true
		return e
	default:
		return p.t.src.refusal(resp)
	}
}

// acquire waits until w's next bytes lie within the hash window and returns
// a buffer for them and how many bytes w still has; nil when w has nothing
// left (a split took the rest) or the attempt is over.
func (p *pipe) acquire(w *work) (*[]byte, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.err != nil || p.ctx.Err() != nil || w.next >= w.to {
			return nil, 0
		}
		if w.next < p.hashed+p.window {
			break
		}
		w.blocked = true
		p.waiting++
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.ctx.Done():
		}
		p.mu.Lock()
		p.waiting--
	}
	if w.blocked {
		w.blocked = false
		w.lastByte.Store(time.Now().UnixNano()) // waiting on us is not a stall
	}
	return p.t.cfg.bufs.Get().(*[]byte), w.to - w.next
}

// fill reads into b until it is full, the answer ends or handOff has passed,
// so progress moves on slow links too.
func (p *pipe) fill(body io.Reader, b []byte, w *work) (int, error) {
	n, began := 0, time.Now()
	for n < len(b) {
		k, err := body.Read(b[n:])
		if k > 0 {
			n += k
			w.lastByte.Store(time.Now().UnixNano())
			p.t.meter.fetched.Add(int64(k))
		}
		if err != nil {
			return n, err
		}
		if time.Since(began) > handOff {
			break
		}
	}
	return n, nil
}

// claim reserves the next n bytes of w for its owner, fewer if w has shrunk.
func (p *pipe) claim(w *work, n int64) (off, m int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m = max(min(n, w.to-w.next), 0)
	off = w.next
	w.next += m
	return off, m
}

// unclaim gives back the bytes of w from off, claimed but not written: a
// failed write must not leave them counted as fetched, or the hash would
// wait for them for ever. A split since the claim only moved w.to past them.
func (p *pipe) unclaim(w *work, off int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.next = min(w.next, off)
}

// submit hands written bytes to the hash and notes them for the state file.
func (p *pipe) submit(off int64, buf *[]byte, n int64) {
	p.mu.Lock()
	p.parked[off] = &chunk{buf: buf, n: int(n)}
	p.done = p.done.add(span{off, off + n})
	p.unsaved += n
	save := p.unsaved >= p.saveAt
	p.broadcastLocked()
	p.mu.Unlock()
	p.t.meter.addDone(n)
	if save {
		select {
		case p.saveNow <- struct{}{}:
		default:
		}
	}
}

// setSize ends a stream of unknown length.
func (p *pipe) setSize(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.size = n
	for _, w := range p.active {
		if w.to == math.MaxInt64 {
			w.to = n
		}
	}
	p.broadcastLocked()
}

func (p *pipe) opened(d int) {
	p.mu.Lock()
	p.open += d
	n := p.open
	p.mu.Unlock()
	p.t.meter.conns.Store(int32(n))
}

// write writes fetched bytes at their offset in the .part.
func (p *pipe) write(b []byte, off int64) error {
	if f := p.t.cfg.writeFault; f != nil {
		if err := f(off, int64(len(b))); err != nil {
			return err
		}
	}
	return writeAt(p.t.part, b, off)
}

// writeAt writes b at off in large writes.
func writeAt(part *partFile, b []byte, off int64) error {
	for len(b) > 0 {
		k := min(len(b), writeSlice)
		if _, err := part.f.WriteAt(b[:k], off); err != nil {
			return err
		}
		b, off = b[k:], off+int64(k)
	}
	return nil
}

// hashLoop feeds SHA-256 in file order: bytes fetched in this attempt from
// the window, bytes fetched before it read back from disk (a resume's
// rehash, which checks for cancellation between chunks).
func (p *pipe) hashLoop() {
	var disk []byte
	for {
		p.mu.Lock()
		var c *chunk
		var from, n int64
		for {
			if p.err != nil || p.ctx.Err() != nil {
				p.mu.Unlock()
				return
			}
			if p.size >= 0 && p.hashed >= p.size {
				p.complete = true
				p.broadcastLocked()
				p.mu.Unlock()
				return
			}
			if c = p.parked[p.hashed]; c != nil {
				delete(p.parked, p.hashed)
				from, n = p.hashed, int64(c.n)
				break
			}
			if sp, ok := p.prior.at(p.hashed); ok {
				from, n = p.hashed, min(sp.to-p.hashed, diskChunk)
				break
			}
			p.t.meter.verifying.Store(false)
			ch := p.changed
			p.mu.Unlock()
			select {
			case <-ch:
			case <-p.ctx.Done():
			}
			p.mu.Lock()
		}
		fetchedAll := len(p.pending) == 0 && len(p.active) == 0
		p.mu.Unlock()

		if c != nil {
			p.t.meter.verifying.Store(fetchedAll)
			p.t.hash.Write((*c.buf)[:c.n])
			p.t.cfg.bufs.Put(c.buf)
		} else {
			p.t.meter.verifying.Store(true)
			if disk == nil {
				disk = make([]byte, diskChunk)
			}
			if _, err := p.t.part.f.ReadAt(disk[:n], from); err != nil {
				p.mu.Lock()
				p.failLocked(diskError("read "+p.t.part.name(), err))
				p.mu.Unlock()
				return
			}
			p.t.hash.Write(disk[:n])
		}
		p.mu.Lock()
		p.hashed = from + n
		p.broadcastLocked()
		p.mu.Unlock()
	}
}

// monitor ends requests that have stopped: no byte for the stall timeout,
// or none for slowAfter while other connections wait (for work, or for the
// window this one holds back). Their ranges are handed out again.
func (p *pipe) monitor(stop <-chan struct{}) {
	tick := max(min(250*time.Millisecond, p.t.cfg.stallTimeout/8, p.t.cfg.slowAfter/4), time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		p.mu.Lock()
		for _, w := range p.active {
			if w.blocked || w.cancel == nil {
				continue
			}
			idle := time.Duration(now - w.lastByte.Load())
			switch {
			case idle >= p.t.cfg.stallTimeout:
				w.cancel(errStalled)
			case p.waiting > 0 && idle >= p.t.cfg.slowAfter:
				w.cancel(errSlow)
			}
		}
		p.mu.Unlock()
	}
}

// saver writes the state file every few pieces and every saveEvery.
func (p *pipe) saver(stop <-chan struct{}) {
	t := time.NewTicker(saveEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-p.saveNow:
		case <-t.C:
		}
		p.save()
	}
}

// save names what is on disk in the state file. The spans are taken before
// the .part is synced, so every one of them is durable when the state is.
func (p *pipe) save() {
	p.mu.Lock()
	if p.unsaved == 0 || p.complete {
		p.mu.Unlock()
		return
	}
	snap := slices.Clone(p.done)
	p.unsaved = 0
	p.mu.Unlock()
	_ = p.t.saveState(snap) // logged; a resume just has less to start from
}
