// Package comfyui watches the ComfyUI server beside the dashboard and turns
// its queue and history into activity: a generation started, completed (with
// what it produced) or failed, and ComfyUI itself becoming unreachable.
//
// ComfyUI only tells the browser tab that queued a prompt about its progress,
// so the watcher polls GET /queue and GET /history?max_items=1 (the newest
// entry; more only when that one is new, see fetchHistory), and keeps a
// WebSocket open only because every client gets "status" frames when the
// queue changes: such a frame triggers an immediate poll. Without the
// WebSocket everything still works, a poll interval later.
//
// Each prompt is logged once. The PromptStore remembers, per prompt id, what
// was logged ("started", "completed", "failed"), so a dashboard restart logs
// nothing twice; prompts that had already finished when this run first
// reached ComfyUI are remembered without being logged. ComfyUI keeps its
// history in memory and prompt ids are random UUIDs, so a ComfyUI restart
// re-logs nothing either. A prompt seen running that then disappears from
// both queue and history (ComfyUI stopped mid-run) is logged as failed,
// "interrupted: ComfyUI restarted", once it has been missing for a few polls
// and poll intervals. A prompt whose start was logged before a
// dashboard restart and that vanishes while the dashboard is down cannot be
// found again (the store is only asked about ids ComfyUI shows) and is left
// at "started".
//
// Subtitles name the workflow when the prompt carries a name, else the prompt
// id. A prompt id longer than 128 bytes (ComfyUI makes UUIDs, but a client may
// choose its own) is logged and stored as its first bytes and a hash of the
// whole. The stock ComfyUI front end sends no name (its extra_data holds only the
// graph under extra_pnginfo.workflow, plus Comfy.org credentials), so a name
// comes only from scripts or other front ends; workflowName lists where it is
// looked for. extra_data is never logged or stored, because of those
// credentials. Details carry prompt_id, workflow, the output files
// ({path: subfolder/filename, type, kind}) and their counts,
// duration_seconds (ComfyUI's execution timestamps, else as observed), and
// for failures error, exception_type, node_type and node_id.
//
// A prompt that starts and finishes between two polls is logged once, as
// completed or failed, without a "started" row. Files of type "temp"
// (PreviewImage and the like) are listed in the details but not counted as
// generated. A prompt cancelled in ComfyUI is logged as failed with the title
// "Generation interrupted".
//
// Polling and logging are split, because every dashboard shows its own pod's
// ComfyUI but only the volume's writer may write activity: Run polls and
// keeps Status current in every mode; Record, run only while this dashboard
// is the writer, makes those polls also log. Each time Record starts, the
// watcher starts afresh as a new run would (the store says what was logged).
//
// ComfyUI being down, restarting or answering garbage never stops the
// dashboard: the watcher retries with exponential backoff and logs at debug
// level. When ComfyUI, once reachable, fails failuresBeforeAlert polls in a
// row, one "ComfyUI is unreachable" error activity is written; another only
// after ComfyUI was reachable in between. Requiring two failures keeps one
// slow answer from filling the activity log.
package comfyui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"dashboard/model"
)

// Recorder writes activity; the program's activity log implements it.
type Recorder interface {
	Record(ctx context.Context, a model.Activity) (model.Activity, error)
}

// PromptStore remembers which prompts were logged and how far: the status
// of the last activity written for each.
type PromptStore interface {
	PromptStatus(ctx context.Context, promptID string) (status model.ActivityStatus, ok bool, err error)
	SetPromptStatus(ctx context.Context, promptID string, status model.ActivityStatus) error
	DeletePromptsBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// promptMemory is how long a prompt id is remembered as logged. ComfyUI
// keeps its history only in memory, so a pod never shows older ones again.
const promptMemory = 180 * 24 * time.Hour

// forgetEvery is how often Run forgets prompts older than promptMemory.
const forgetEvery = 24 * time.Hour

// forgetOld forgets prompts last seen more than promptMemory ago, at most
// once per forgetEvery; a failure is logged and tried again next time.
func (w *Watcher) forgetOld(ctx context.Context, st *logState) {
	now := w.now()
	if !st.forgotAt.IsZero() && now.Sub(st.forgotAt) < forgetEvery {
		return
	}
	st.forgotAt = now
	n, err := w.prompts.DeletePromptsBefore(ctx, now.Add(-promptMemory))
	if err != nil {
		w.log.Error("forget old comfyui prompts", "err", err)
		return
	}
	if n > 0 {
		w.log.Info("forgot old comfyui prompts", "deleted", n)
	}
}

// Config configures a Watcher.
type Config struct {
	URL          string // ComfyUI's base URL; "" turns the watcher off
	Recorder     Recorder
	Prompts      PromptStore
	Logger       *slog.Logger
	Now          func() time.Time
	HTTPClient   *http.Client  // nil: a client with short timeouts
	PollInterval time.Duration // 0: 2s
	MaxBackoff   time.Duration // 0: 60s
}

const (
	defaultPollInterval = 2 * time.Second
	defaultMaxBackoff   = 60 * time.Second

	// failuresBeforeAlert failed polls in a row make a reachable ComfyUI
	// unreachable.
	failuresBeforeAlert = 2
	// A running prompt that left the queue without reaching the history is
	// taken as lost after missing from more than missingPolls polls and for
	// missingPolls poll intervals.
	missingPolls = 3
	// A poll reads only the newest history entry: entries carry the whole
	// graph, often tens of kilobytes, and most polls find nothing new. When
	// the newest is new, more may have finished since the last poll, and the
	// window grows fourfold, up to maxHistoryWindow, until it reaches an
	// entry already known. The first poll reads firstHistoryWindow entries
	// to remember what finished before the dashboard was watching.
	firstHistoryWindow = 32
	maxHistoryWindow   = 512
	// maxItemPath is the longest prompt id asked for as /history/{id}.
	maxItemPath = 2048
	// maxBody caps what is read from one ComfyUI answer.
	maxBody = 64 << 20
)

// Watcher follows one ComfyUI server. Run it once.
type Watcher struct {
	base       *url.URL // nil: off
	shownURL   string   // base without a password, for logs and activity
	rec        Recorder
	prompts    PromptStore
	log        *slog.Logger
	now        func() time.Time
	client     *http.Client
	ownClient  bool
	poll       time.Duration
	maxBackoff time.Duration

	// status is what the last poll found, for the pod's overview; Run
	// writes it, anyone reads it.
	statusMu sync.Mutex
	status   Status

	// trigger asks Run for a poll now (a WebSocket frame, Record starting).
	trigger chan struct{}

	// logMu guards logging: Run holds it while it writes, so Record
	// returns only once no write of its session is under way.
	logMu   sync.Mutex
	logging *logSession // nil: polls only keep Status
}

// logSession is one Record call: the context writes use, and what that
// session knows about prompts (only Run's goroutine touches st).
type logSession struct {
	ctx context.Context
	st  *logState
}

// Status is ComfyUI as the watcher's last poll saw it. Reading it costs no
// request to ComfyUI.
type Status struct {
	Watching     bool // a URL is configured
	Reachable    bool // the last poll answered (one failure in a row is forgiven, as for the activity)
	QueueRunning int  // prompts running at the last successful poll
	QueuePending int  // prompts waiting at the last successful poll
}

// Status returns what the last poll found.
func (w *Watcher) Status() Status {
	w.statusMu.Lock()
	defer w.statusMu.Unlock()
	s := w.status
	s.Watching = w.base != nil
	return s
}

func (w *Watcher) setStatus(s Status) {
	w.statusMu.Lock()
	w.status = s
	w.statusMu.Unlock()
}

// New checks cfg and returns a Watcher. An empty URL gives a Watcher whose
// Run returns at once.
func New(cfg Config) (*Watcher, error) {
	w := &Watcher{
		rec: cfg.Recorder, prompts: cfg.Prompts, log: cfg.Logger, now: cfg.Now,
		client: cfg.HTTPClient, poll: cfg.PollInterval, maxBackoff: cfg.MaxBackoff,
		trigger: make(chan struct{}, 1),
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.poll <= 0 {
		w.poll = defaultPollInterval
	}
	if w.maxBackoff <= 0 {
		w.maxBackoff = defaultMaxBackoff
	}
	w.maxBackoff = max(w.maxBackoff, w.poll)
	if cfg.URL == "" {
		return w, nil
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Error repeats the raw URL, which may hold a password.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("invalid comfyui url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("invalid comfyui url %q: want http://host:port or https://host:port", u.Redacted())
	}
	if cfg.Recorder == nil || cfg.Prompts == nil {
		return nil, errors.New("comfyui watcher needs a recorder and a prompt store")
	}
	u.RawQuery, u.Fragment = "", ""
	w.base, w.shownURL = u, u.Redacted()
	if w.client == nil {
		w.client, w.ownClient = defaultClient(), true
	}
	return w, nil
}

// defaultClient gives up quickly: ComfyUI is on the same machine, and a slow
// answer is better retried than waited for.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = 10 * time.Second
	t.MaxIdleConnsPerHost = 4
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// Run polls ComfyUI until ctx is done, keeping Status current; while Record
// runs, the polls also log activity. Trouble with ComfyUI is logged and
// retried, never returned.
func (w *Watcher) Run(ctx context.Context) error {
	if w.base == nil {
		w.log.Info("comfyui watcher off")
		return nil
	}
	w.log.Info("comfyui watcher started", "url", w.shownURL, "poll_interval", w.poll)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.followWS(ctx, w.trigger)
	}()
	defer func() {
		cancel()
		wg.Wait()
		if w.ownClient {
			w.client.CloseIdleConnections()
		}
		// Nobody polls any more: a stale "reachable" would mislead.
		w.setStatus(Status{})
	}()

	var rs reachState
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-w.trigger:
		}
		w.pollOnce(ctx, &rs)
		if ctx.Err() != nil {
			return nil
		}
		timer.Reset(w.delay(rs.fails))
	}
}

// Record makes Run's polls log activity until ctx is done; main runs it only
// while this dashboard is the volume's writer. It returns once no write is
// under way. Each call starts as a fresh run would: what the store
// remembers keeps every prompt logged once.
func (w *Watcher) Record(ctx context.Context) error {
	if w.base == nil {
		return nil
	}
	w.logMu.Lock()
	w.logging = &logSession{ctx: ctx, st: newLogState()}
	w.logMu.Unlock()
	w.log.Info("comfyui activity logged by this dashboard")
	select {
	case w.trigger <- struct{}{}:
	default:
	}
	<-ctx.Done()
	w.logMu.Lock()
	w.logging = nil
	w.logMu.Unlock()
	return nil
}

// session returns the Record session s if it is still the current one, with
// logMu held; release with w.logMu.Unlock. nil (and the lock not held)
// when logging has stopped since.
func (w *Watcher) session(s *logSession) *logSession {
	if s == nil {
		return nil
	}
	w.logMu.Lock()
	if w.logging != s || s.ctx.Err() != nil {
		w.logMu.Unlock()
		return nil
	}
	return s
}

// delay is the wait before the next poll: the poll interval, doubled for
// each failure in a row up to the maximum backoff.
func (w *Watcher) delay(fails int) time.Duration {
	d := w.poll
	for i := 1; i < fails && d < w.maxBackoff; i++ {
		d *= 2
	}
	return min(d, w.maxBackoff)
}

// reachState is whether Run finds ComfyUI; only Run's goroutine touches it.
type reachState struct {
	reachable bool // the last poll succeeded, or fewer than failuresBeforeAlert failed since
	fails     int  // failed polls in a row
}

// logState is what one Record session knows about prompts.
type logState struct {
	contacted    bool      // a poll of this session succeeded
	firstContact time.Time // when
	running      map[string]*tracked
	// settled holds ids in the last history window that are known to be
	// logged (or deliberately not), so the store is asked about each id once.
	settled map[string]bool
	// present holds the ids in the last history window read: a newer window
	// that reaches one of them has seen everything that finished since.
	present map[string]bool
	// forgotAt is when old prompts were last forgotten.
	forgotAt time.Time
}

// tracked is a prompt whose start is in the store and whose end is not.
type tracked struct {
	raw          string // its id as ComfyUI knows it
	name         string
	seenAt       time.Time // when this Run first saw it running
	missingSince time.Time // zero while ComfyUI still shows it
	missingPolls int       // successful polls in a row that did not show it
}

func newLogState() *logState {
	return &logState{running: map[string]*tracked{}, settled: map[string]bool{}}
}

// pollOnce reads ComfyUI's queue for Status and, while Record runs, its
// history too, and logs what changed.
func (w *Watcher) pollOnce(ctx context.Context, rs *reachState) {
	w.logMu.Lock()
	s := w.logging
	if s != nil && s.ctx.Err() == nil {
		w.forgetOld(s.ctx, s.st)
	}
	w.logMu.Unlock()
	// The queue first: a prompt finishing in between then shows in the
	// history read next, instead of in neither.
	q, err := w.fetchQueue(ctx)
	var hist []historyEntry
	var present map[string]bool
	if err == nil && s != nil {
		hist, present, err = w.fetchHistory(s.ctx, s.st)
	}
	if err != nil {
		if ctx.Err() == nil && (s == nil || s.ctx.Err() == nil) {
			w.pollFailed(rs, s, err)
		}
		return
	}
	rs.fails = 0
	if !rs.reachable {
		rs.reachable = true
		w.log.Info("comfyui reachable", "url", w.shownURL)
	}
	w.setStatus(Status{Reachable: true, QueueRunning: len(q.Running), QueuePending: len(q.Pending)})
	if s = w.session(s); s == nil {
		return
	}
	defer w.logMu.Unlock()
	ctx, st := s.ctx, s.st
	first := !st.contacted
	if first {
		st.contacted, st.firstContact = true, w.now()
	}
	st.present = present
	w.handleHistory(ctx, st, hist, first)
	w.handleQueue(ctx, st, q)
	w.checkMissing(ctx, st, q, present)
}

// pollFailed counts a failed poll; the one that makes ComfyUI unreachable
// is logged as activity when session s is still logging.
func (w *Watcher) pollFailed(rs *reachState, s *logSession, err error) {
	rs.fails++
	w.log.Debug("comfyui poll failed", "url", w.shownURL, "err", err, "failures", rs.fails)
	if !rs.reachable || rs.fails < failuresBeforeAlert {
		return
	}
	rs.reachable = false
	w.setStatus(Status{})
	w.log.Warn("comfyui unreachable", "url", w.shownURL, "err", err)
	if s = w.session(s); s == nil {
		return
	}
	defer w.logMu.Unlock()
	if _, rerr := w.rec.Record(s.ctx, unreachableActivity(truncate(w.shownURL, 1000), err)); rerr != nil {
		w.log.Error("record comfyui unreachable", "err", rerr)
	}
}

// handleHistory logs the end of prompts that finished since the last poll.
func (w *Watcher) handleHistory(ctx context.Context, st *logState, hist []historyEntry, first bool) {
	settled := make(map[string]bool, len(hist))
	for _, e := range hist {
		if st.settled[e.ID] {
			settled[e.ID] = true
			continue
		}
		if tr := st.running[e.ID]; tr != nil {
			if w.finish(ctx, e, tr.name, w.now().Sub(tr.seenAt)) {
				delete(st.running, e.ID)
				settled[e.ID] = true
			}
			continue
		}
		status, ok, err := w.prompts.PromptStatus(ctx, e.ID)
		if err != nil {
			w.log.Warn("read comfyui prompt status", "prompt_id", e.ID, "err", err)
			continue // asked again next poll
		}
		switch {
		case ok && status != model.ActivityStarted:
			settled[e.ID] = true
		case ok || !w.finishedBeforeContact(st, e, first):
			// Its start was logged (maybe by an earlier run), or it ran
			// entirely between two polls.
			if w.finish(ctx, e, workflowName(e.Extra), 0) {
				settled[e.ID] = true
			}
		default:
			w.remember(ctx, e.ID, finalStatus(e))
			settled[e.ID] = true
		}
	}
	st.settled = settled
}

// finishedBeforeContact tells whether a prompt unknown to the store ended
// before this Run first reached ComfyUI, so it is remembered, not logged.
// Besides everything in the first poll's history, that covers old entries
// sliding into the window later because newer ones were deleted in ComfyUI.
func (w *Watcher) finishedBeforeContact(st *logState, e historyEntry, first bool) bool {
	return first || e.EndMS > 0 && e.EndMS < st.firstContact.UnixMilli()
}

// handleQueue logs prompts that started running.
func (w *Watcher) handleQueue(ctx context.Context, st *logState, q queueState) {
	for _, it := range q.Running {
		if tr := st.running[it.ID]; tr != nil || st.settled[it.ID] {
			continue
		}
		name := workflowName(it.Extra)
		status, ok, err := w.prompts.PromptStatus(ctx, it.ID)
		if err != nil {
			w.log.Warn("read comfyui prompt status", "prompt_id", it.ID, "err", err)
			continue
		}
		if ok {
			if status == model.ActivityStarted {
				// Logged by an earlier run; follow it to its end.
				st.running[it.ID] = &tracked{raw: it.Raw, name: name, seenAt: w.now()}
			}
			continue
		}
		if _, err := w.rec.Record(ctx, startedActivity(it.ID, name)); err != nil {
			w.log.Error("record generation started", "prompt_id", it.ID, "err", err)
			continue // tried again next poll
		}
		w.remember(ctx, it.ID, model.ActivityStarted)
		st.running[it.ID] = &tracked{raw: it.Raw, name: name, seenAt: w.now()}
	}
}

// checkMissing gives up on running prompts ComfyUI no longer knows.
func (w *Watcher) checkMissing(ctx context.Context, st *logState, q queueState, present map[string]bool) {
	if len(st.running) == 0 {
		return
	}
	inQueue := make(map[string]bool, len(q.Running)+len(q.Pending))
	for _, it := range q.Running {
		inQueue[it.ID] = true
	}
	for _, it := range q.Pending {
		inQueue[it.ID] = true
	}
	now := w.now()
	for id, tr := range st.running {
		if inQueue[id] || present[id] {
			tr.missingSince, tr.missingPolls = time.Time{}, 0
			continue
		}
		if tr.missingSince.IsZero() {
			tr.missingSince = now
		}
		// Both a count and a time: status frames can bunch polls together,
		// and a busy machine can stretch the time between them.
		tr.missingPolls++
		if tr.missingPolls <= missingPolls || now.Sub(tr.missingSince) < missingPolls*w.poll {
			continue
		}
		// It may only have fallen out of the history window.
		entries, _, err := w.fetchHistoryItem(ctx, tr.raw)
		if err != nil {
			w.log.Debug("comfyui history item", "prompt_id", id, "err", err)
			continue
		}
		done := false
		if len(entries) > 0 {
			done = w.finish(ctx, entries[0], tr.name, now.Sub(tr.seenAt))
		} else if _, err := w.rec.Record(ctx, interruptedActivity(id, tr.name, tr.missingSince.Sub(tr.seenAt))); err != nil {
			w.log.Error("record generation interrupted", "prompt_id", id, "err", err)
		} else {
			w.remember(ctx, id, model.ActivityFailed)
			done = true
		}
		if done {
			delete(st.running, id)
		}
	}
}

// finish logs a prompt's end and remembers it; false when nothing could be
// logged, to be tried again next poll.
func (w *Watcher) finish(ctx context.Context, e historyEntry, name string, observed time.Duration) bool {
	if name == "" {
		name = workflowName(e.Extra)
	}
	if _, err := w.rec.Record(ctx, finishedActivity(e, name, observed)); err != nil {
		w.log.Error("record generation finished", "prompt_id", e.ID, "err", err)
		return false
	}
	w.remember(ctx, e.ID, finalStatus(e))
	return true
}

// remember stores what was logged about a prompt. It outlives a shutdown
// that began after the activity was written, or the next run would log it
// again. A failure is logged and not retried: this run already knows, and
// only a restart could log twice.
func (w *Watcher) remember(ctx context.Context, promptID string, status model.ActivityStatus) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.prompts.SetPromptStatus(ctx, promptID, status); err != nil {
		w.log.Error("save comfyui prompt status", "prompt_id", promptID, "status", status, "err", err)
	}
}

func finalStatus(e historyEntry) model.ActivityStatus {
	if e.Outcome == outcomeSuccess {
		return model.ActivityCompleted
	}
	return model.ActivityFailed
}

func (w *Watcher) fetchQueue(ctx context.Context) (queueState, error) {
	body, err := w.get(ctx, "queue", nil)
	if err != nil {
		return queueState{}, err
	}
	q, err := parseQueue(body)
	if err != nil {
		return queueState{}, fmt.Errorf("read /queue: %w", err)
	}
	return q, nil
}

// fetchHistory reads the newest history entries, widening the window while
// every entry in it is new (more finished than the window holds).
func (w *Watcher) fetchHistory(ctx context.Context, st *logState) ([]historyEntry, map[string]bool, error) {
	n := 1
	if !st.contacted {
		n = firstHistoryWindow
	}
	for ; ; n = min(n*4, maxHistoryWindow) {
		body, err := w.get(ctx, "history", url.Values{"max_items": {fmt.Sprint(n)}})
		if err != nil {
			return nil, nil, err
		}
		entries, present, err := parseHistory(body)
		if err != nil {
			return nil, nil, fmt.Errorf("read /history: %w", err)
		}
		if !st.contacted || len(present) < n || n >= maxHistoryWindow || overlaps(present, st.present) {
			return entries, present, nil
		}
	}
}

func overlaps(a, b map[string]bool) bool {
	for id := range a {
		if b[id] {
			return true
		}
	}
	return false
}

func (w *Watcher) fetchHistoryItem(ctx context.Context, id string) ([]historyEntry, map[string]bool, error) {
	if len(id) > maxItemPath {
		// No server takes a path this long; such a prompt is found in the
		// history window or not at all.
		return nil, nil, nil
	}
	body, err := w.get(ctx, "history/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, nil, err
	}
	entries, present, err := parseHistory(body)
	if err != nil {
		return nil, nil, fmt.Errorf("read /history/%s: %w", promptID(id), err)
	}
	return entries, present, nil
}

// get fetches a path under ComfyUI's base URL and returns a 200 body.
func (w *Watcher) get(ctx context.Context, p string, query url.Values) ([]byte, error) {
	u := w.base.JoinPath(p)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// The url.Error wrapper repeats the URL the activity already names.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("get /%s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("get /%s: status %s", p, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read /%s: %w", p, err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("read /%s: answer larger than %d bytes", p, maxBody)
	}
	return body, nil
}
