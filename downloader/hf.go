package downloader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"dashboard/model"
)

// This file holds the HuggingFace rules: which host is HuggingFace (the
// endpoint), who gets the token, how /resolve/ is turned into the signed
// CDN URL the bytes come from, what its headers say about the file, and
// what its answers mean for the user.

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

func isHFHost(host string) bool {
	host = strings.ToLower(host)
	return host == "huggingface.co" || host == "www.huggingface.co"
}

// rewrite points huggingface.co URLs at the endpoint.
func (e endpoint) rewrite(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bad url %q: %w", shownURL(raw), err)
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

// shownURL is a URL as it may appear in a message, an activity row, a frame
// or a log: without its query and fragment, where signed CDN links carry
// their signature (X-Amz-Signature, Signature, token, …), and without any
// user:password.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			return raw[:i]
		}
		return raw
	}
	return shownURLOf(u)
}

func shownURLOf(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment, c.User = "", false, "", "", nil
	return c.String()
}

// guardedClient copies base so that a redirect never carries the token off
// the endpoint's host: once a chain has left it, Authorization is dropped
// for good, even if a later hop comes back.
func (e endpoint) guardedClient(base *http.Client) *http.Client {
	c := *base
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
		return nil
	}
	return &c
}

func noRedirectClient(base *http.Client) *http.Client {
	c := *base
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// defaultClient is tuned for a few very large transfers over many
// connections: HTTP/1.1 (each range gets its own TCP connection, which is
// what a CDN limits per connection; HTTP/2 would put them all on one), no
// transparent gzip (it breaks Range and the checksum), big socket buffers,
// and enough idle connections per host that every range connection is
// reused. There is no overall timeout; the stall watchdog ends transfers
// that stop moving.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true
	t.ReadBufferSize = 256 << 10
	t.WriteBufferSize = 64 << 10
	t.MaxIdleConnsPerHost = MaxConnections + 4
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	return &http.Client{Transport: t}
}

func newRequest(ctx context.Context, method string, u *url.URL) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request for %s: %w", shownURLOf(u), err)
	}
	req.Header.Set("User-Agent", "comfyui-dashboard")
	return req, nil
}

// fileMeta is what the answers about a file said about it. HuggingFace puts
// the SHA-256 of an LFS file (X-Linked-Etag) and its size (X-Linked-Size)
// on the redirect to the CDN, not on the CDN's answer.
type fileMeta struct {
	linkedEtag   string // X-Linked-Etag as sent
	linkedSize   int64  // X-Linked-Size, -1 when absent
	etag         string // the data answer's ETag (strong only)
	lastModified string // the data answer's Last-Modified
}

func (m *fileMeta) addHop(h http.Header) {
	if m.linkedEtag == "" {
		m.linkedEtag = strings.TrimSpace(h.Get("X-Linked-Etag"))
	}
	if m.linkedSize < 0 {
		if n, err := strconv.ParseInt(h.Get("X-Linked-Size"), 10, 64); err == nil && n >= 0 {
			m.linkedSize = n
		}
	}
}

func (m *fileMeta) addFinal(h http.Header) {
	m.addHop(h)
	if v := strings.TrimSpace(h.Get("ETag")); v != "" && !strings.HasPrefix(v, "W/") {
		m.etag = v
	}
	m.lastModified = strings.TrimSpace(h.Get("Last-Modified"))
}

// validator tells one version of the file from another: the checksum
// HuggingFace links, else the server's strong ETag, else its Last-Modified.
func (m *fileMeta) validator() string {
	switch {
	case m.linkedEtag != "":
		return m.linkedEtag
	case m.etag != "":
		return m.etag
	default:
		return m.lastModified
	}
}

// ifRange is what range requests send as If-Range, so a server whose copy
// changed answers with the whole new file (200) instead of a piece of it.
func (m *fileMeta) ifRange() string {
	if m.etag != "" {
		return m.etag
	}
	return m.lastModified
}

// sha256 is the file's SHA-256 as the server states it, "" if it does not.
func (m *fileMeta) sha256() string {
	if v := hexTag(m.linkedEtag); v != "" {
		return v
	}
	return hexTag(m.etag)
}

// hexTag returns an ETag's value when it is a SHA-256 (64 hex digits).
func hexTag(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	v = strings.Trim(v, `"`)
	if model.IsSHA256(v) {
		return strings.ToLower(v)
	}
	return ""
}

// source is where one file's bytes come from: the preset's URL, resolved
// once to where its redirects lead (HuggingFace's signed CDN link), and
// resolved again when that link expires. The token goes only to the
// endpoint's host, on every request, and never along a redirect that left it.
type source struct {
	ep      endpoint
	orig    *url.URL
	file    fileRef
	token   func(context.Context) string
	resolve *http.Client // never follows redirects
	data    *http.Client // follows redirects, dropping the token off the endpoint's host

	mu   sync.Mutex
	url  *url.URL // where range requests go
	auth bool     // url is on the endpoint's host and no redirect left it
	gen  int      // counts resolutions; a refresh asked for an older one is already done
}

// fileRef names a file in messages.
type fileRef struct {
	path string // relative to the models folder
	url  string // as the preset gives it
}

func newSource(ep endpoint, orig *url.URL, f fileRef, token func(context.Context) string, resolve, data *http.Client) *source {
	return &source{ep: ep, orig: orig, file: f, token: token, resolve: resolve, data: data, url: orig, auth: ep.owns(orig)}
}

// redirected says whether range requests go somewhere other than the
// preset's URL (a CDN link that can expire).
func (s *source) redirected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url.String() != s.orig.String()
}

// probe asks the preset's URL for bytes [from, to], following its
// redirects by hand so the token never leaves the endpoint's host, and
// remembers where they led. The answer is returned whatever its status.
func (s *source) probe(ctx context.Context, from, to int64) (*http.Response, fileMeta, error) {
	meta := fileMeta{linkedSize: -1}
	cur, auth := s.orig, s.ep.owns(s.orig)
	for range 10 {
		req, err := newRequest(ctx, http.MethodGet, cur)
		if err != nil {
			return nil, meta, err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
		s.authorize(ctx, req, auth)
		resp, err := s.resolve.Do(req)
		if err != nil {
			return nil, meta, err
		}
		next, ok := redirectTarget(resp, cur)
		if !ok {
			meta.addFinal(resp.Header)
			s.mu.Lock()
			s.url, s.auth = cur, auth
			s.gen++
			s.mu.Unlock()
			return resp, meta, nil
		}
		meta.addHop(resp.Header)
		drain(resp)
		auth = auth && s.ep.owns(next)
		cur = next
	}
	return nil, meta, errors.New("stopped after 10 redirects")
}

// refresh resolves the preset's URL again after the CDN refused a link
// that had been good (signed links expire after about an hour): it follows
// the redirects on the endpoint's host with HEAD and takes the first one
// that leaves it, without asking the CDN. gen is the resolution the
// refused request used; if another connection has refreshed since, there
// is nothing to do. It returns the validator the new answer carries.
func (s *source) refresh(ctx context.Context, gen int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return "", nil
	}
	meta := fileMeta{linkedSize: -1}
	cur, auth := s.orig, s.ep.owns(s.orig)
	for range 10 {
		req, err := newRequest(ctx, http.MethodHead, cur)
		if err != nil {
			return "", err
		}
		s.authorize(ctx, req, auth)
		resp, err := s.resolve.Do(req)
		if err != nil {
			return "", err
		}
		next, ok := redirectTarget(resp, cur)
		drain(resp)
		if !ok {
			if resp.StatusCode >= 300 {
				return "", statusError(resp, s.file)
			}
			meta.addFinal(resp.Header)
			s.url, s.auth = cur, auth
			s.gen++
			return meta.validator(), nil
		}
		meta.addHop(resp.Header)
		if !s.ep.owns(next) {
			s.url, s.auth = next, false
			s.gen++
			return meta.validator(), nil
		}
		cur = next
	}
	return "", errors.New("stopped after 10 redirects")
}

// get asks for bytes [from, to] (to < 0: to the end) where the probe led.
func (s *source) get(ctx context.Context, from, to int64, ifRange string) (*http.Response, int, error) {
	s.mu.Lock()
	u, auth, gen := s.url, s.auth, s.gen
	s.mu.Unlock()
	req, err := newRequest(ctx, http.MethodGet, u)
	if err != nil {
		return nil, gen, err
	}
	if to >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
	} else {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
	}
	if ifRange != "" {
		req.Header.Set("If-Range", ifRange)
	}
	s.authorize(ctx, req, auth)
	resp, err := s.data.Do(req)
	return resp, gen, err
}

func (s *source) authorize(ctx context.Context, req *http.Request, auth bool) {
	if !auth {
		return
	}
	if tok := s.token(ctx); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

// expired says whether an answer means the signed link has run out: the
// CDN a redirect led to refuses it (403 or 410).
func (s *source) expired(resp *http.Response) bool {
	return (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusGone) && s.redirected()
}

// redirectTarget is where a redirect answer points, resolved against the
// URL that was asked.
func redirectTarget(resp *http.Response, asked *url.URL) (*url.URL, bool) {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil, false
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, false
	}
	next, err := asked.Parse(loc)
	if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
		return nil, false
	}
	return next, true
}

// drain reads a little of an unwanted body so its connection can be reused.
func drain(resp *http.Response) {
	buf := make([]byte, 4<<10)
	for range 16 {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
}

// statusError maps an HTTP answer that carries no file to a download error.
func statusError(resp *http.Response, f fileRef) error {
	code := resp.StatusCode
	where := shownURL(f.url)
	switch {
	case code == http.StatusUnauthorized:
		return permanent(model.CodeHFTokenRequired,
			"%s: HuggingFace asked for a token (401): set a valid HuggingFace token in Settings and retry", f.path)
	case code == http.StatusForbidden:
		if page := modelPage(f.url); page != "" {
			return permanent(model.CodeHFAccessDenied,
				"%s: access denied (403): accept the model's licence at %s with the account of your token, then retry", f.path, page)
		}
		return permanent(model.CodeHFAccessDenied, "%s: the server refused access (403) to %s", f.path, where)
	case code == http.StatusNotFound || code == http.StatusGone:
		return permanent(model.CodeNotFound, "%s: not found at %s (%d); the preset may be out of date", f.path, where, code)
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		e := transient("%s: the server answered %s", f.path, resp.Status)
		e.retryAfter = retryAfter(resp.Header.Get("Retry-After"))
		return e
	default:
		return permanent(model.CodeHTTP, "%s: the server answered %s for %s", f.path, resp.Status, where)
	}
}

// transportError classifies a failed request or body read. cause is why
// the request's context ended, if it did.
func transportError(f fileRef, cause, err error, stallTimeout time.Duration) error {
	switch {
	case errors.Is(cause, errStalled):
		return transient("%s: no data arrived for %s", f.path, stallTimeout)
	case errors.Is(cause, errSlow):
		e := transient("%s: a connection stopped delivering; another takes its range", f.path)
		e.immediate = true
		return e
	case cause != nil:
		return cause // stopped by the caller: not a network fault
	}
	err = unwrapURLError(err)
	var ne net.Error
	what := "the connection failed"
	if errors.As(err, &ne) && ne.Timeout() {
		what = "the connection timed out"
	} else if errors.Is(err, errCut) || errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "EOF") {
		what = "the connection was cut"
	}
	return transient("%s: %s (%v)", f.path, what, err)
}

// unwrapURLError drops the *url.Error around a request's failure: its
// text holds the whole URL, signature included.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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

// parseContentRange reads "bytes START-END/TOTAL" or "bytes */TOTAL"
// (start -1). TOTAL may be "*" (unknown, -1).
func parseContentRange(v string) (start, end, total int64, ok bool) {
	v, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		n, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, false
		}
		total = n
	}
	if rng == "*" {
		return -1, -1, total, true
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	start, err1 := strconv.ParseInt(s, 10, 64)
	end, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, 0, false
	}
	return start, end, total, true
}
