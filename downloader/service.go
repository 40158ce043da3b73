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

// This file holds the rules every model host with a token of its own
// (HuggingFace, Civitai: a service) follows: which host is which service
// (its endpoint, where its public URLs are fetched from), which token goes
// where (a service's token to its endpoint's host only, on every request,
// never along a redirect that left it), how a download URL is turned into
// the signed storage link the bytes come from, what the answers' headers
// say about the file, when a link has expired and must be asked for again,
// and what an answer means for the user. hf.go and civitai.go say what
// differs between the two services.

// endpoint is where a service's public URLs are fetched from, and the only
// host that ever sees its token.
type endpoint struct {
	scheme, host, prefix string
}

func parseEndpoint(name, s string) (endpoint, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return endpoint{}, fmt.Errorf("downloader: %s endpoint %q must be an http(s) URL", name, s)
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

// owns says whether u is on the endpoint's host, where the token may go.
func (e endpoint) owns(u *url.URL) bool {
	return u.Scheme == e.scheme && hostPort(u) == e.host
}

// service is a model host with a token of its own. What differs between
// them is data here; the mechanism (rewrite, source, refresh, the guarded
// clients) is the same code for all.
type service struct {
	name string   // as messages name it
	ep   endpoint // where its URLs are fetched from; the only host its token goes to
	// public says whether a host name is the service's public one, whose
	// URLs are fetched from ep instead (huggingface.co → HF_ENDPOINT).
	public func(host string) bool
	token  func(ctx context.Context) string
	// askMethod asks a URL of the service where it leads without fetching
	// the file: the up-front token probe and renewing an expired link.
	askMethod string
	// refused is what a 401 or 403 the service's own host answered means.
	refused func(status int, f fileRef) *fetchError
	// tokenRequired is the error that refuses an install up front when the
	// service said a file needs a token and none is set.
	tokenRequired model.Code
}

// owns says whether u is on the service's host; a nil service owns nothing.
func (s *service) owns(u *url.URL) bool {
	return s != nil && s.ep.owns(u)
}

// services are the model hosts the downloader knows, in the order a URL is
// matched against them.
type services []*service

// rewrite parses raw, points a service's public URL at its endpoint, and
// says which service the URL belongs to (nil: any other host, which never
// gets a token).
func (ss services) rewrite(raw string) (*url.URL, *service, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("bad url %q: %w", shownURL(raw), err)
	}
	for _, s := range ss {
		if s.public(strings.ToLower(u.Hostname())) {
			u.Scheme, u.Host = s.ep.scheme, s.ep.host
			u.Path = s.ep.prefix + u.Path
			u.RawPath = ""
			return u, s, nil
		}
	}
	for _, s := range ss {
		if s.owns(u) {
			return u, s, nil
		}
	}
	return u, nil, nil
}

// tokensMissing refuses an install up front when one of its files needs a
// token that its service has none for: a preset marked gated (HuggingFace),
// or a service answering 401 to a quick ask, without a token, of the first
// missing file it serves. Any other answer or trouble says nothing: the
// download itself then reports what is wrong.
func (m *Manager) tokensMissing(ctx context.Context, p Preset, missing []PresetFile) error {
	for _, svc := range m.services {
		if svc.token(ctx) != "" {
			continue
		}
		if svc == m.hf && p.Gated {
			return model.Errorf(svc.tokenRequired, "%s is gated on HuggingFace; set a HuggingFace token first.", p.what())
		}
		if m.asksForToken(ctx, svc, missing) {
			return model.Errorf(svc.tokenRequired, "%s needs a %s token (%s answered 401: only signed-in users may download it); set one first.", p.what(), svc.name, svc.name)
		}
	}
	return nil
}

// asksForToken asks svc, without a token and without following a
// redirect, about the first missing file it serves, and says whether it
// answered 401.
func (m *Manager) asksForToken(ctx context.Context, svc *service, missing []PresetFile) bool {
	for _, f := range missing {
		u, of, err := m.services.rewrite(f.URL)
		if err != nil || of != svc {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := askRequest(pctx, svc, u)
		if err != nil {
			return false
		}
		resp, err := m.headCli.Do(req)
		if err != nil {
			m.log.Warn("token probe failed", "service", svc.name, "url", shownURLOf(u), "err", unwrapURLError(err))
			return false
		}
		drain(resp)
		return resp.StatusCode == http.StatusUnauthorized
	}
	return false
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

// guardedClient copies base so that a redirect never carries a token off
// the host it was sent to (only ever a service's own): once a chain has
// left the first request's host, Authorization is dropped for good, even if
// a later hop comes back. Go's client alone would keep it for another port
// of the same host, for a subdomain, and from https to http.
func guardedClient(base *http.Client) *http.Client {
	c := *base
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		first := via[0].URL
		left := !sameOrigin(req.URL, first)
		for _, r := range via {
			left = left || !sameOrigin(r.URL, first)
		}
		if left {
			req.Header.Del("Authorization")
		}
		return nil
	}
	return &c
}

func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && hostPort(a) == hostPort(b)
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
// once to where its redirects lead (HuggingFace's signed CDN link, Civitai's
// signed storage link), and resolved again when that link expires. The
// service's token goes only to its endpoint's host, on every request, and
// never along a redirect that left it; a file of no service gets no token.
type source struct {
	svc     *service // nil: a host of no service
	orig    *url.URL
	file    fileRef
	resolve *http.Client // never follows redirects
	data    *http.Client // follows redirects, dropping the token once one leaves the host

	mu   sync.Mutex
	url  *url.URL // where range requests go
	auth bool     // url is on the service's host and no redirect left it
	gen  int      // counts resolutions; a refresh asked for an older one is already done
}

// fileRef names a file in messages.
type fileRef struct {
	path string // relative to the models folder
	url  string // as the preset gives it
}

func newSource(svc *service, orig *url.URL, f fileRef, resolve, data *http.Client) *source {
	return &source{svc: svc, orig: orig, file: f, resolve: resolve, data: data, url: orig, auth: svc.owns(orig)}
}

// redirected says whether range requests go somewhere other than the
// preset's URL (a storage link that can expire).
func (s *source) redirected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url.String() != s.orig.String()
}

// probe asks the preset's URL for bytes [from, to], following its
// redirects by hand so the token never leaves the service's host, and
// remembers where they led. The answer is returned whatever its status.
func (s *source) probe(ctx context.Context, from, to int64) (*http.Response, fileMeta, error) {
	meta := fileMeta{linkedSize: -1}
	cur, auth := s.orig, s.svc.owns(s.orig)
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
		auth = auth && s.svc.owns(next)
		cur = next
	}
	return nil, meta, errors.New("stopped after 10 redirects")
}

// refresh resolves the preset's URL again after the storage host refused
// a link that had been good (HuggingFace's signed links expire after about
// an hour, Civitai's after a day): it follows the redirects on the
// service's host, asking as the service wants to be asked (askMethod), and
// takes the first one that leaves it, without asking the storage host. gen
// is the resolution the refused request used; if another connection has
// refreshed since, there is nothing to do. It returns the validator the new
// answer carries.
func (s *source) refresh(ctx context.Context, gen int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return "", nil
	}
	meta := fileMeta{linkedSize: -1}
	cur, auth := s.orig, s.svc.owns(s.orig)
	for range 10 {
		req, err := askRequest(ctx, s.svc, cur)
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
				return "", s.refusal(resp)
			}
			meta.addFinal(resp.Header)
			s.url, s.auth = cur, auth
			s.gen++
			return meta.validator(), nil
		}
		meta.addHop(resp.Header)
		if !s.svc.owns(next) {
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

// askRequest is a request that asks u where it leads without fetching the
// file: svc's askMethod (HEAD when there is no service), and for a GET one
// byte, so a host that answers with the file sends almost nothing.
func askRequest(ctx context.Context, svc *service, u *url.URL) (*http.Request, error) {
	method := http.MethodHead
	if svc != nil {
		method = svc.askMethod
	}
	req, err := newRequest(ctx, method, u)
	if err == nil && method == http.MethodGet {
		req.Header.Set("Range", "bytes=0-0")
	}
	return req, err
}

// authorize sets the service's token on a request to its own host (auth).
func (s *source) authorize(ctx context.Context, req *http.Request, auth bool) {
	if auth {
		s.svc.authorize(ctx, req)
	}
}

// authorize sets the service's token, when there is one, only ever as a
// Bearer header: never in a URL, where it would reach logs and, through a
// redirect, the storage host. The caller sends req to the service's host.
func (s *service) authorize(ctx context.Context, req *http.Request) {
	if s == nil {
		return
	}
	if tok := s.token(ctx); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

// expired says whether an answer means the signed link has run out: the
// storage host a redirect led to refuses it (403 or 410). A refusal from
// the service's own host is the service's word, not an expired link.
func (s *source) expired(resp *http.Response) bool {
	return (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusGone) &&
		s.redirected() && !s.fromService(resp)
}

// fromService says whether resp came from the file's service's own host.
func (s *source) fromService(resp *http.Response) bool {
	return resp.Request != nil && resp.Request.URL != nil && s.svc.owns(resp.Request.URL)
}

// refusal maps an answer that carries no file to a download error: a 401 or
// 403 from the service's own host is that service's to explain (a token to
// set, a licence to accept, early access); anything else means the same
// from any host.
func (s *source) refusal(resp *http.Response) error {
	if (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && s.fromService(resp) {
		return s.svc.refused(resp.StatusCode, s.file)
	}
	return statusError(resp, s.file)
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

// statusError maps an HTTP answer that carries no file, from a host that is
// not the file's service, to a download error.
func statusError(resp *http.Response, f fileRef) error {
	code := resp.StatusCode
	where := shownURL(f.url)
	switch {
	case code == http.StatusUnauthorized:
		// No token is ever sent here, so asking for one in Settings would not help.
		return permanent(model.CodeHTTP, "%s: %s asked for a login (401); the dashboard sends tokens only to HuggingFace and Civitai", f.path, where)
	case code == http.StatusForbidden:
		return permanent(model.CodeHTTP, "%s: the server refused access (403) to %s", f.path, where)
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
// the request's context ended, if it did: callers read it before they
// release the context themselves.
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
