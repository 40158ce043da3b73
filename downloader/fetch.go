package downloader

import (
	"context"
	"crypto/sha256"
	"dashboard/model"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	chunkSize = 1 << 20 // read in 1 MiB pieces: few syscalls per GiB
	chunks    = 4       // pieces in flight between the network and the disk
	// writeSlice is the size of one write(2). Bigger writes make recent
	// kernels back the page cache with large folios, which in the VMs pods
	// run in come from cold memory: 1 MiB writes measured half as fast as
	// 64 KiB ones (see docs/PERFORMANCE.md).
	writeSlice     = 64 << 10
	writebackEvery = 32 << 20 // hand written data to the disk every 32 MiB
	maxWait        = 10 * time.Minute
	handOff        = 100 * time.Millisecond // longest a partly filled chunk waits for more bytes
)

// fetchError is a failure with its API code. Transient ones are retried.
type fetchError struct {
	code       model.Code
	msg        string
	transient  bool
	retryAfter time.Duration
	immediate  bool // retry at once without counting a failure
}

func (e *fetchError) Error() string { return e.msg }

func toDownloadError(err error) *model.Error {
	var fe *fetchError
	if errors.As(err, &fe) {
		return &model.Error{Code: fe.code, Message: fe.msg}
	}
	return &model.Error{Code: model.CodeNetwork, Message: err.Error()}
}

func diskError(op string, err error) *fetchError {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return &fetchError{code: model.CodeDiskSpace, msg: fmt.Sprintf("%s: the volume is full", op)}
	case errors.Is(err, syscall.EDQUOT): // a network volume's quota, often before it is full
		return &fetchError{code: model.CodeDiskSpace, msg: fmt.Sprintf("%s: the volume is full (its quota is used up)", op)}
	}
	return &fetchError{code: model.CodeDisk, msg: fmt.Sprintf("%s: %v", op, err)}
}

// endpoint is where huggingface.co URLs are fetched from, and the only host
// that ever sees the token.
type endpoint struct {
	scheme, host, prefix string
}

func parseEndpoint(s string) (endpoint, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return endpoint{}, fmt.Errorf("downloader: huggingface endpoint %q must be an http(s) URL", s)
	}
	return endpoint{scheme: u.Scheme, host: hostPort(u), prefix: strings.TrimSuffix(u.Path, "/")}, nil
}

// hostPort is u's host with the scheme's default port dropped, lower-cased.
func hostPort(u *url.URL) string {
	h := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "https" && strings.HasSuffix(h, ":443"):
		h = strings.TrimSuffix(h, ":443")
	case u.Scheme == "http" && strings.HasSuffix(h, ":80"):
		h = strings.TrimSuffix(h, ":80")
	}
	return h
}

// rewrite points huggingface.co URLs at the endpoint.
func (e endpoint) rewrite(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bad url %q: %w", raw, err)
	}
	if isHFHost(u.Hostname()) {
		u.Scheme, u.Host = e.scheme, e.host
		u.Path = e.prefix + u.Path
		u.RawPath = ""
	}
	return u, nil
}

// owns says whether u is on the endpoint's host, where the token may go.
func (e endpoint) owns(u *url.URL) bool {
	return u.Scheme == e.scheme && hostPort(u) == e.host
}

// hopsKey finds, from CheckRedirect, the record of the request being followed.
type hopsKey struct{}

// hops collects checksum headers along a redirect chain: HuggingFace puts
// the file's SHA-256 on its redirect (X-Linked-Etag), not on the CDN answer.
type hops struct {
	linkedEtag, etag string
}

func (h *hops) add(hdr http.Header) {
	if h.linkedEtag == "" {
		if v := hexTag(hdr.Get("X-Linked-Etag")); v != "" {
			h.linkedEtag = v
		}
	}
	if h.etag == "" {
		if v := hexTag(hdr.Get("ETag")); v != "" {
			h.etag = v
		}
	}
}

func (h *hops) sha256() string {
	if h.linkedEtag != "" {
		return h.linkedEtag
	}
	return h.etag
}

// hexTag returns an ETag's value when it is a SHA-256 (64 hex digits).
func hexTag(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	v = strings.Trim(v, `"`)
	if isHex64(v) {
		return strings.ToLower(v)
	}
	return ""
}

// guardedClient copies base so that a redirect never carries the token off
// the endpoint's host: once a chain has left it, Authorization is dropped
// for good, even if a later hop comes back.
func (e endpoint) guardedClient(base *http.Client) *http.Client {
	c := *base
	next := base.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		left := !e.owns(req.URL)
		for _, r := range via {
			left = left || !e.owns(r.URL)
		}
		if left {
			req.Header.Del("Authorization")
		}
		if h, ok := req.Context().Value(hopsKey{}).(*hops); ok && req.Response != nil {
			h.add(req.Response.Header)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &c
}

func noRedirectClient(base *http.Client) *http.Client {
	c := *base
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// defaultClient is tuned for a few very large transfers: HTTP/1.1 (one big
// stream is not held back by HTTP/2 flow-control windows), no transparent
// gzip (it breaks Range and the checksum), big socket buffers. There is no
// overall timeout; the stall watchdog ends transfers that stop moving.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true
	t.ReadBufferSize = 256 << 10
	t.WriteBufferSize = 64 << 10
	t.MaxIdleConnsPerHost = 4
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	return &http.Client{Transport: t}
}

func newRequest(ctx context.Context, method string, u *url.URL) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "comfyui-dashboard")
	return req, nil
}

// pathLocks makes sure one file is fetched by one download at a time, so
// presets sharing a path install it once.
type pathLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newPathLocks() *pathLocks { return &pathLocks{m: map[string]chan struct{}{}} }

func (p *pathLocks) ch(path string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.m[path]
	if !ok {
		c = make(chan struct{}, 1)
		p.m[path] = c
	}
	return c
}

func (p *pathLocks) lock(ctx context.Context, path string) (func(), error) {
	c := p.ch(path)
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pathLocks) tryLock(path string) (func(), bool) {
	c := p.ch(path)
	select {
	case c <- struct{}{}:
		return func() { <-c }, true
	default:
		return nil, false
	}
}

func (m *Manager) validator(path string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.validators[path]
}

func (m *Manager) setValidator(path, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.validators[path] = v
}

func (m *Manager) forgetValidator(path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.validators, path)
}

// fetchPreset fetches the preset's files that are not in place, in order.
func (m *Manager) fetchPreset(ctx context.Context, d *download) error {
	var todo []PresetFile
	var total, need int64
	for _, f := range d.preset.Files {
		if m.installed(f) {
			continue
		}
		todo = append(todo, f)
		total += f.SizeBytes
		var have int64
		if st, err := os.Stat(m.finalPath(f) + ".part"); err == nil {
			have = st.Size()
		}
		need += max(0, f.SizeBytes-have)
	}
	d.bytesTotal.Store(total)
	m.mu.Lock()
	d.filesCompleted = d.filesTotal - len(todo)
	m.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	if err := os.MkdirAll(m.cfg.ModelsDir, 0o755); err != nil {
		return diskError("create the models folder", err)
	}
	if err := m.checkSpace(need); err != nil {
		return err
	}
	for _, f := range todo {
		m.mu.Lock()
		d.currentFile = f.Path
		m.mu.Unlock()
		if err := m.fetchFile(ctx, d, f); err != nil {
			return err
		}
		m.mu.Lock()
		d.filesCompleted++
		m.mu.Unlock()
		m.landed(f)
		m.publishPresets() // the file is installed, for every preset that lists it
	}
	return nil
}

// checkSpace fails at once when the models folder cannot hold need bytes.
// When the free space cannot be read, the download goes ahead (a full disk
// is still caught on write).
func (m *Manager) checkSpace(need int64) error {
	if need <= 0 {
		return nil
	}
	free, err := m.cfg.FreeSpace(m.cfg.ModelsDir)
	if err != nil {
		m.log.Warn("free space unknown", "path", m.cfg.ModelsDir, "err", err)
		return nil
	}
	if uint64(need) > free {
		return &fetchError{code: model.CodeDiskSpace, msg: fmt.Sprintf(
			"not enough disk space: %s more is needed but only %s is free in %s",
			humanBytes(need), humanBytes(int64(min(free, 1<<62))), m.cfg.ModelsDir)}
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// fileState carries one file's progress across retry attempts.
type fileState struct {
	h       hash.Hash
	hashed  int64 // bytes of the .part fed to h
	counted int64 // bytes of this file included in the download's bytes_done
	sized   int64 // bytes of this file included in the download's bytes_total
}

// fetchFile brings one file into place: resume or start its .part, retry
// transient failures with backoff, verify, rename.
func (m *Manager) fetchFile(ctx context.Context, d *download, f PresetFile) error {
	unlock, err := m.paths.lock(ctx, f.Path)
	if err != nil {
		return err
	}
	defer unlock()
	st := &fileState{h: sha256.New(), sized: f.SizeBytes}
	if m.installed(f) { // another preset sharing this path fetched it meanwhile
		d.bytesTotal.Add(-f.SizeBytes)
		return nil
	}
	u, err := m.endpoint.rewrite(f.URL)
	if err != nil {
		return &fetchError{code: model.CodeNotFound, msg: err.Error()}
	}
	final := m.finalPath(f)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return diskError("create "+filepath.Dir(f.Path), err)
	}
	failures, best := 0, int64(-1)
	for {
		progressed, err := m.attempt(ctx, d, f, u, st)
		// Only a .part longer than ever before is progress: a server that
		// cannot resume and keeps dropping would otherwise be retried forever.
		progressed = progressed && st.counted > best
		best = max(best, st.counted)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe *fetchError
		if !errors.As(err, &fe) || !fe.transient {
			return err
		}
		if progressed {
			failures = 0 // a flaky link that keeps moving is not out of retries
		}
		failures++
		if failures > m.cfg.MaxRetries {
			return &fetchError{code: model.CodeNetwork, msg: fmt.Sprintf("%s: gave up after %d attempts: %s", f.Path, failures, fe.msg)}
		}
		if fe.immediate {
			continue
		}
		wait := m.backoff(failures)
		if fe.retryAfter > 0 {
			wait = min(fe.retryAfter, maxWait)
		}
		m.log.Warn("download retrying", "download_id", d.id, "path", f.Path, "attempt", failures, "wait", wait.String(), "err", fe.msg)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff doubles from RetryBase with jitter, so many pods hitting one
// mirror do not retry in step.
func (m *Manager) backoff(failures int) time.Duration {
	d := m.cfg.RetryBase << min(failures-1, 16)
	if d <= 0 || d > maxWait {
		d = maxWait
	}
	return d/2 + rand.N(d/2+1)
}

// attempt makes one request for f, appending to its .part. It returns nil
// once the file is verified and in place. progressed says whether any bytes
// arrived, which resets the retry budget.
func (m *Manager) attempt(ctx context.Context, d *download, f PresetFile, u *url.URL, st *fileState) (progressed bool, err error) {
	final := m.finalPath(f)
	part := final + ".part"
	file, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false, diskError("open "+f.Path+".part", err)
	}
	defer func() {
		if file == nil {
			return
		}
		file.Close()
		// An attempt that ended with nothing on disk leaves no empty .part:
		// it would make the preset look partly installed.
		if err != nil {
			if fi, serr := os.Stat(part); serr == nil && fi.Size() == 0 {
				os.Remove(part)
			}
		}
	}()
	info, err := file.Stat()
	if err != nil {
		return false, diskError("stat "+f.Path+".part", err)
	}
	have := info.Size()
	if st.hashed != have {
		// Resuming a .part left by an earlier run or attempt: the hash must
		// cover the bytes already there.
		st.h.Reset()
		buf := make([]byte, chunkSize)
		if _, err := io.CopyBuffer(st.h, io.NewSectionReader(file, 0, have), buf); err != nil {
			return false, diskError("read "+f.Path+".part", err)
		}
		st.hashed = have
	}
	d.bytesDone.Add(have - st.counted)
	st.counted = have

	restart := func() error {
		if err := file.Truncate(0); err != nil {
			return diskError("truncate "+f.Path+".part", err)
		}
		st.h.Reset()
		st.hashed = 0
		d.bytesDone.Add(-st.counted)
		st.counted = 0
		have = 0
		return nil
	}

	var moved atomic.Int64 // bytes read in this attempt, watched for stalls
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := m.watchStall(reqCtx, cancel, &moved)
	defer stopWatch()

	hp := &hops{}
	req, err := newRequest(context.WithValue(reqCtx, hopsKey{}, hp), http.MethodGet, u)
	if err != nil {
		return false, &fetchError{code: model.CodeNetwork, msg: err.Error()}
	}
	if m.endpoint.owns(u) {
		if tok := m.cfg.Token(ctx); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	validator := m.validator(f.Path)
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		if validator != "" {
			req.Header.Set("If-Range", validator)
		}
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return false, m.transportError(reqCtx, f, err)
	}
	defer resp.Body.Close()
	hp.add(resp.Header)

	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			if err := restart(); err != nil {
				return false, err
			}
			return false, &fetchError{code: model.CodeNetwork, transient: true, immediate: true,
				msg: fmt.Sprintf("%s: the server sent an unexpected range; starting over", f.Path)}
		}
		total = size
	case http.StatusOK:
		if have > 0 {
			// The file changed upstream or the server ignores ranges.
			m.log.Info("download restarting file", "download_id", d.id, "path", f.Path, "had_bytes", have)
			if err := restart(); err != nil {
				return false, err
			}
		}
		total = resp.ContentLength
	case http.StatusRequestedRangeNotSatisfiable:
		if _, size, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && have > 0 && size == have {
			total = size // the .part was already complete: verify it below
			break
		}
		if err := restart(); err != nil {
			return false, err
		}
		return false, &fetchError{code: model.CodeNetwork, transient: true, immediate: true,
			msg: fmt.Sprintf("%s: the partial file does not fit the server's copy; starting over", f.Path)}
	default:
		return false, m.statusError(resp, f)
	}

	expected := f.sha256
	if expected == "" {
		expected = hp.sha256()
	}
	if have > 0 && validator == "" && expected == "" {
		// A .part from before a restart, and nothing to check the joined
		// result against: only a fresh copy can be trusted.
		if err := restart(); err != nil {
			return false, err
		}
		return false, &fetchError{code: model.CodeNetwork, transient: true, immediate: true,
			msg: fmt.Sprintf("%s: cannot verify the partial file; starting over", f.Path)}
	}
	if v := resp.Header.Get("ETag"); v != "" && !strings.HasPrefix(v, "W/") {
		m.setValidator(f.Path, v)
	} else if v := resp.Header.Get("Last-Modified"); v != "" {
		m.setValidator(f.Path, v)
	}
	if f.exact && total >= 0 && total != f.SizeBytes {
		// The preset names an exact size: a file of another size would land
		// but never count as installed, and be fetched again on every Install.
		return false, &fetchError{code: model.CodeSizeMismatch, msg: fmt.Sprintf(
			"%s: the server's file is %d bytes but the preset says %d; the preset may be out of date", f.Path, total, f.SizeBytes)}
	}
	if total >= 0 {
		d.bytesTotal.Add(total - st.sized)
		st.sized = total
		if err := m.checkSpace(total - have); err != nil {
			return false, err
		}
	}

	var written int64
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		if _, err := file.Seek(have, io.SeekStart); err != nil {
			return false, diskError("seek "+f.Path+".part", err)
		}
		var werr error
		written, err, werr = m.stream(d, file, &countingReader{r: resp.Body, n: &moved}, st)
		progressed = written > 0
		if werr != nil {
			return progressed, diskError("write "+f.Path+".part", werr)
		}
		if err != nil {
			return progressed, m.transportError(reqCtx, f, err)
		}
		if total >= 0 && have+written != total {
			return progressed, &fetchError{code: model.CodeNetwork, transient: true,
				msg: fmt.Sprintf("%s: the connection closed after %d of %d bytes", f.Path, have+written, total)}
		}
	}

	if f.exact && have+written != f.SizeBytes { // the server sent no length up front
		os.Remove(part)
		d.bytesDone.Add(-st.counted)
		st.counted, st.hashed = 0, 0
		st.h.Reset()
		return progressed, &fetchError{code: model.CodeSizeMismatch, msg: fmt.Sprintf(
			"%s: the server's file is %d bytes but the preset says %d; the preset may be out of date", f.Path, have+written, f.SizeBytes)}
	}

	syncStart := time.Now()
	if err := file.Sync(); err != nil {
		return progressed, diskError("sync "+f.Path+".part", err)
	}
	m.log.Debug("download file synced", "download_id", d.id, "path", f.Path, "sync_seconds", time.Since(syncStart).Seconds())
	err = file.Close()
	file = nil
	if err != nil {
		return progressed, diskError("close "+f.Path+".part", err)
	}
	if expected != "" {
		if got := hex.EncodeToString(st.h.Sum(nil)); got != expected {
			os.Remove(part)
			m.forgetValidator(f.Path)
			d.bytesDone.Add(-st.counted)
			st.counted, st.hashed = 0, 0
			st.h.Reset()
			return progressed, &fetchError{code: model.CodeChecksum, msg: fmt.Sprintf(
				"%s: checksum mismatch (expected sha256 %s, got %s); the partial file was deleted", f.Path, expected, got)}
		}
	} else {
		m.log.Info("download unverified", "download_id", d.id, "path", f.Path, "reason", "no sha256 in the preset or the server's headers")
	}
	if err := os.Rename(part, final); err != nil {
		return progressed, diskError("rename "+f.Path+".part", err)
	}
	syncDir(filepath.Dir(final))
	m.forgetValidator(f.Path)
	return progressed, nil
}

// stream copies body to file and the hash. Reading runs ahead by a few
// chunks, and writing and hashing each chunk happen side by side, so the
// network, the disk and SHA-256 overlap instead of adding up. It returns the
// bytes written, the read error and the write error.
func (m *Manager) stream(d *download, file *os.File, body io.Reader, st *fileState) (int64, error, error) {
	type chunk struct {
		buf  *[]byte
		n    int
		refs atomic.Int32 // writer and hasher; the last one frees it
	}
	free := make(chan *chunk, chunks)
	for range chunks {
		free <- &chunk{buf: m.getBuf()}
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			free <- c
		}
	}
	toWrite := make(chan *chunk, chunks)
	toHash := make(chan *chunk, chunks)
	var failed atomic.Bool
	var written int64
	werrc := make(chan error, 1)
	go func() {
		var werr error
		wb := newWriteback(file, st.counted)
		for c := range toWrite {
			b := (*c.buf)[:c.n]
			for len(b) > 0 && werr == nil {
				n, err := file.Write(b[:min(len(b), writeSlice)])
				b = b[n:]
				written += int64(n)
				st.counted += int64(n)
				d.bytesDone.Add(int64(n))
				d.fetched.Add(int64(n))
				wb.wrote(int64(n))
				if err != nil {
					werr = err
					failed.Store(true)
				}
			}
			release(c)
		}
		wb.close() // before the file can be closed
		werrc <- werr
	}()
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for c := range toHash {
			st.h.Write((*c.buf)[:c.n])
			st.hashed += int64(c.n)
			release(c)
		}
	}()

	var rerr error
	for !failed.Load() {
		c := <-free
		b := *c.buf
		// Fill the chunk, but hand it on after a short while even if not
		// full, so progress moves on slow links too.
		n, began := 0, time.Now()
		for n < len(b) {
			k, err := body.Read(b[n:])
			n += k
			if err != nil {
				rerr = err
				break
			}
			if time.Since(began) > handOff {
				break
			}
		}
		if n == 0 {
			free <- c
		} else {
			c.n = n
			c.refs.Store(2)
			toWrite <- c
			toHash <- c
		}
		if rerr != nil {
			break
		}
	}
	close(toWrite)
	close(toHash)
	werr := <-werrc
	<-hashed
	for range chunks {
		m.putBuf((<-free).buf)
	}
	if rerr == io.EOF {
		rerr = nil
	}
	return written, rerr, werr
}

func (m *Manager) getBuf() *[]byte {
	if b, ok := m.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, chunkSize)
	return &b
}

func (m *Manager) putBuf(b *[]byte) { m.bufs.Put(b) }

// countingReader notes every byte read so the stall watchdog sees progress.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

var errStalled = errors.New("stalled")

// watchStall cancels the request when no byte has moved for StallTimeout,
// counting from the request's start (so a server that never answers is
// caught too).
func (m *Manager) watchStall(ctx context.Context, cancel context.CancelCauseFunc, moved *atomic.Int64) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := max(m.cfg.StallTimeout/8, time.Millisecond)
		t := time.NewTicker(tick)
		defer t.Stop()
		last, since := moved.Load(), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				if n := moved.Load(); n != last {
					last, since = n, now
				} else if now.Sub(since) >= m.cfg.StallTimeout {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// transportError classifies a failed request or body read.
func (m *Manager) transportError(reqCtx context.Context, f PresetFile, err error) error {
	if errors.Is(context.Cause(reqCtx), errStalled) {
		return &fetchError{code: model.CodeNetwork, transient: true,
			msg: fmt.Sprintf("%s: no data arrived for %s", f.Path, m.cfg.StallTimeout)}
	}
	if reqCtx.Err() != nil {
		return context.Cause(reqCtx) // stopped by the caller: not a network fault
	}
	var ne net.Error
	what := "the connection failed"
	if errors.As(err, &ne) && ne.Timeout() {
		what = "the connection timed out"
	} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		what = "the connection was cut"
	}
	return &fetchError{code: model.CodeNetwork, transient: true, msg: fmt.Sprintf("%s: %s (%v)", f.Path, what, err)}
}

// statusError maps an HTTP answer that carries no file to a download error.
func (m *Manager) statusError(resp *http.Response, f PresetFile) error {
	code := resp.StatusCode
	switch {
	case code == http.StatusUnauthorized:
		return &fetchError{code: model.CodeHFTokenRequired, msg: fmt.Sprintf(
			"%s: HuggingFace asked for a token (401): set a valid HuggingFace token in Settings and retry", f.Path)}
	case code == http.StatusForbidden:
		if page := modelPage(f.URL); page != "" {
			return &fetchError{code: model.CodeHFAccessDenied, msg: fmt.Sprintf(
				"%s: access denied (403): accept the model's licence at %s with the account of your token, then retry", f.Path, page)}
		}
		return &fetchError{code: model.CodeHFAccessDenied, msg: fmt.Sprintf("%s: the server refused access (403) to %s", f.Path, f.URL)}
	case code == http.StatusNotFound || code == http.StatusGone:
		return &fetchError{code: model.CodeNotFound, msg: fmt.Sprintf("%s: not found at %s (%d); the preset may be out of date", f.Path, f.URL, code)}
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return &fetchError{code: model.CodeNetwork, transient: true, retryAfter: retryAfter(resp.Header.Get("Retry-After")),
			msg: fmt.Sprintf("%s: the server answered %s", f.Path, resp.Status)}
	default:
		return &fetchError{code: model.CodeHTTP, msg: fmt.Sprintf("%s: the server answered %s for %s", f.Path, resp.Status, f.URL)}
	}
}

// modelPage is the public HuggingFace page of the repository a URL is in,
// where a gated model's licence is accepted.
func modelPage(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !isHFHost(u.Hostname()) {
		return ""
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(segs) >= 3 && (segs[0] == "datasets" || segs[0] == "spaces") {
		return "https://huggingface.co/" + strings.Join(segs[:3], "/")
	}
	if len(segs) >= 2 {
		return "https://huggingface.co/" + segs[0] + "/" + segs[1]
	}
	return ""
}

// retryAfter reads Retry-After as seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, maxWait)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxWait)
	}
	return 0
}

// parseContentRange reads "bytes START-END/TOTAL" or "bytes */TOTAL".
func parseContentRange(v string) (start, total int64, ok bool) {
	v, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	total, err := strconv.ParseInt(tot, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if rng == "*" {
		return -1, total, true
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err = strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return start, total, true
}

// syncDir makes a rename durable. Some network filesystems refuse to sync
// a directory; the rename itself has happened, so that is not an error.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}
