package downloader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"dashboard/model"
)

// Download is one install or verify of a preset, shaped as the API sends
// it. An install's files count the whole preset (files already in place
// count as completed) and its bytes what it has to fetch; a verify's count
// the files in place it checks and the bytes it hashes.
type Download struct {
	ID             int64                `json:"id"` // the download_history row id
	PresetID       string               `json:"preset_id"`
	PresetName     string               `json:"preset_name"`
	Kind           model.DownloadKind   `json:"kind"`
	Status         model.DownloadStatus `json:"status"`
	FilesTotal     int                  `json:"files_total"`
	FilesCompleted int                  `json:"files_completed"`
	BytesTotal     int64                `json:"bytes_total"`
	BytesDone      int64                `json:"bytes_done"`
	SpeedBps       int64                `json:"speed_bps"`
	EtaSeconds     *int64               `json:"eta_seconds"`
	CurrentFile    string               `json:"current_file"`
	Phase          *model.DownloadPhase `json:"phase"`       // nil unless running
	Connections    int                  `json:"connections"` // open now
	Error          *model.Error         `json:"error"`
	StartedAt      time.Time            `json:"started_at"`
	CompletedAt    *time.Time           `json:"completed_at"`
	// Unverifiable and Corrupt are a verify's findings so far: the files
	// with no known SHA-256 and those that did not match theirs. An
	// install leaves them empty.
	Unverifiable []string `json:"unverifiable"`
	Corrupt      []string `json:"corrupt"`
}

// errCancelled tells a running download that the user stopped it (a
// shutdown shows as the manager's context ending instead).
var errCancelled = errors.New("download cancelled")

// download is the live state of one Download. Fields under "guarded" belong
// to Manager.mu; byte counters are atomics because the transfer updates them
// without the lock.
type download struct {
	id     int64
	kind   model.DownloadKind
	preset Preset // as it was when queued
	done   chan struct{}

	// guarded by Manager.mu
	status         model.DownloadStatus
	filesTotal     int
	filesCompleted int
	currentFile    string
	err            *model.Error
	startedAt      time.Time
	completedAt    *time.Time
	cancel         context.CancelCauseFunc
	unverifiable   []string // a verify's files with no known SHA-256
	corrupt        []string // a verify's files that did not match

	bytesTotal atomic.Int64
	bytesDone  atomic.Int64
	fetched    atomic.Int64 // bytes over the wire, for the speed (resumed bytes excluded)
	speed      atomic.Int64
	eta        atomic.Int64 // seconds, -1 when unknown
	conns      atomic.Int32 // requests open now
	verifying  atomic.Bool  // checksumming bytes already written
}

// snapshotLocked copies d into its API shape; the caller holds Manager.mu.
func (d *download) snapshotLocked() Download {
	out := Download{
		ID:             d.id,
		PresetID:       d.preset.ID,
		PresetName:     d.preset.Name,
		Kind:           d.kind,
		Status:         d.status,
		FilesTotal:     d.filesTotal,
		FilesCompleted: d.filesCompleted,
		BytesTotal:     d.bytesTotal.Load(),
		BytesDone:      d.bytesDone.Load(),
		CurrentFile:    d.currentFile,
		StartedAt:      d.startedAt,
		CompletedAt:    d.completedAt,
		Unverifiable:   append([]string{}, d.unverifiable...),
		Corrupt:        append([]string{}, d.corrupt...),
	}
	if d.err != nil {
		e := *d.err
		out.Error = &e
	}
	if d.status == model.DownloadRunning {
		out.SpeedBps = d.speed.Load()
		if eta := d.eta.Load(); eta >= 0 {
			out.EtaSeconds = &eta
		}
		phase := model.PhaseDownloading
		if d.verifying.Load() || d.kind == model.KindVerify {
			phase = model.PhaseVerifying
		}
		out.Phase = &phase
		out.Connections = int(d.conns.Load())
	}
	return out
}

func (m *Manager) snapshot(d *download) Download {
	m.mu.Lock()
	defer m.mu.Unlock()
	return d.snapshotLocked()
}

// Downloads returns the queued and running downloads and those finished
// since start, oldest first.
func (m *Manager) Downloads() []Download {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Download, 0, len(m.downloads))
	for _, d := range m.downloads {
		out = append(out, d.snapshotLocked())
	}
	return out
}

// KeepFinished is how many ended downloads the live list keeps (and every
// snapshot sends); older ones stay in download_history. The UI's live list
// keeps as many (KEEP_FINISHED in state.js).
const KeepFinished = 100

// pruneLocked forgets the oldest ended downloads beyond KeepFinished, and
// the files of a workflow download it forgets (the UI offers Retry only on
// downloads in the live list).
func (m *Manager) pruneLocked() {
	ended := 0
	for _, d := range m.downloads {
		if d.status != model.DownloadQueued && d.status != model.DownloadRunning {
			ended++
		}
	}
	if ended <= KeepFinished {
		return
	}
	drop := ended - KeepFinished
	m.downloads = slices.DeleteFunc(m.downloads, func(d *download) bool {
		if drop > 0 && d.status != model.DownloadQueued && d.status != model.DownloadRunning {
			drop--
			delete(m.workflows, d.id)
			return true
		}
		return false
	})
}

// Install queues the files of preset id that are not in place yet.
func (m *Manager) Install(ctx context.Context, id string) (Download, error) {
	m.mu.Lock()
	p, ok := m.presets[id]
	m.mu.Unlock()
	if !ok {
		return Download{}, model.Errorf(model.CodeNotFound, "There is no preset %q.", id)
	}
	return m.enqueue(ctx, p)
}

// enqueue queues the files of p that are not in place yet: a preset from
// presets.yaml, or the files a workflow needs.
func (m *Manager) enqueue(ctx context.Context, p Preset) (Download, error) {
	id := p.ID
	m.mu.Lock()
	job := m.jobLocked(id)
	if job != nil && job.kind == model.KindVerify {
		m.mu.Unlock()
		return Download{}, model.Errorf(model.CodeBusy, "%s is being verified; wait for the verify to end (or cancel it), then install.", p.what())
	}
	if job != nil || m.reserved[id] {
		m.mu.Unlock()
		return Download{}, model.Errorf(model.CodeAlreadyQueued, "%s is already queued or downloading.", p.what())
	}
	if other, path := m.conflictingActiveLocked(p); other != "" {
		m.mu.Unlock()
		return Download{}, model.Errorf(model.CodePathConflict,
			"Preset %q cannot be installed: preset %q, being installed now, writes another file (another sha256) to %s. Give the presets different paths in presets.yaml to have both.",
			id, other, path)
	}
	// Reserve the preset while the token probe and the history insert run
	// without the lock, so two quick clicks queue it once.
	m.reserved[id] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.reserved, id)
		m.mu.Unlock()
	}()

	// Civitai's checksums and sizes, asked for now that they are needed.
	p = m.withCivitai(ctx, p)

	var missing []PresetFile
	installed := 0
	var bytesTotal int64
	for _, f := range p.Files {
		if m.installed(f) {
			installed++
			continue
		}
		missing = append(missing, f)
		bytesTotal += f.SizeBytes
	}
	if len(missing) == 0 {
		return Download{}, model.Errorf(model.CodeAlreadyInstalled, "%s is already installed: every file is in place.", p.what())
	}
	if err := m.conflictInPlace(p, missing); err != nil {
		return Download{}, err
	}
	if err := m.tokensMissing(ctx, p, missing); err != nil {
		return Download{}, err
	}

	rec, err := m.cfg.History.StartDownload(ctx, id, len(p.Files))
	if err != nil {
		return Download{}, fmt.Errorf("record download of %q: %w", id, err)
	}
	d := m.newDownload(rec, model.KindInstall, p, len(p.Files), installed, bytesTotal)

	m.log.Info("download queued", "download_id", d.id, "preset_id", id, "files_missing", len(missing))
	snap := m.add(d)
	m.publishPresets()
	m.notify()
	return snap, nil
}

// newDownload is the live state of a download just recorded as rec.
func (m *Manager) newDownload(rec model.DownloadRecord, kind model.DownloadKind, p Preset, filesTotal, filesCompleted int, bytesTotal int64) *download {
	started := rec.StartedAt
	if started.IsZero() {
		started = m.cfg.Now()
	}
	d := &download{
		id:             rec.ID,
		kind:           kind,
		preset:         p,
		done:           make(chan struct{}),
		status:         model.DownloadQueued,
		filesTotal:     filesTotal,
		filesCompleted: filesCompleted,
		startedAt:      started.UTC(),
	}
	d.bytesTotal.Store(bytesTotal)
	d.eta.Store(-1)
	return d
}

// add puts a new download in the live list and at the end of the queue.
func (m *Manager) add(d *download) Download {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.downloads = append(m.downloads, d)
	m.pruneLocked()
	m.queue = append(m.queue, d)
	snap := d.snapshotLocked()
	// Frames are queued under the lock so a worker's "downloading" can
	// never overtake this "queued".
	m.events.push(model.FrameDownload, snap)
	return snap
}

// jobLocked is the queued or running download (install or verify) of
// preset id, nil when there is none; the caller holds m.mu.
func (m *Manager) jobLocked(id string) *download {
	for _, d := range m.downloads {
		if d.preset.ID == id && (d.status == model.DownloadQueued || d.status == model.DownloadRunning) {
			return d
		}
	}
	return nil
}

// notify wakes one idle worker.
func (m *Manager) notify() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Cancel stops a queued or running download and removes its partial files.
func (m *Manager) Cancel(id int64) (Download, error) {
	m.mu.Lock()
	d := m.findLocked(id)
	if d == nil {
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := m.cfg.History.GetDownload(ctx, id); err == nil {
			return Download{}, model.Errorf(model.CodeAlreadyFinished, "Download %d ended before the dashboard restarted.", id)
		}
		return Download{}, model.Errorf(model.CodeNotFound, "There is no download %d.", id)
	}
	switch d.status {
	case model.DownloadQueued:
		m.queue = slices.DeleteFunc(m.queue, func(q *download) bool { return q == d })
		now := m.cfg.Now().UTC()
		d.status, d.completedAt = model.DownloadCancelled, &now
		snap := d.snapshotLocked()
		m.mu.Unlock()
		m.finishHistory(d, snap)
		m.publishFinal(snap)
		m.publishPresets()
		m.log.Info("download cancelled", "download_id", id, "preset_id", d.preset.ID, "while", "queued")
		close(d.done)
		return snap, nil
	case model.DownloadRunning:
		d.cancel(errCancelled)
		m.mu.Unlock()
		// The worker records the end (the .part files stay, so a retry
		// resumes); wait so the answer shows the final state. A transfer
		// stops within a read.
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			m.log.Warn("cancel still in progress", "download_id", id)
		}
		return m.snapshot(d), nil
	default:
		st := d.status
		m.mu.Unlock()
		return Download{}, model.Errorf(model.CodeAlreadyFinished, "Download %d is already %s.", id, st)
	}
}

func (m *Manager) findLocked(id int64) *download {
	for _, d := range m.downloads {
		if d.id == id {
			return d
		}
	}
	return nil
}

// Retry queues again the preset of a failed or cancelled download, which
// may be one from before a restart (found in the history). Partial files
// left behind are resumed.
func (m *Manager) Retry(ctx context.Context, id int64) (Download, error) {
	m.mu.Lock()
	d := m.findLocked(id)
	var presetID string
	var status model.DownloadStatus
	var kind model.DownloadKind
	var live Preset
	if d != nil {
		presetID, status, kind, live = d.preset.ID, d.status, d.kind, d.preset
	}
	m.mu.Unlock()
	if d == nil {
		rec, err := m.cfg.History.GetDownload(ctx, id)
		if err != nil {
			return Download{}, fmt.Errorf("look up download %d: %w", id, err) // not_found when there is none
		}
		presetID, status, kind = rec.PresetID, rec.Status, rec.Kind
		// A row still "downloading" from an earlier run was cut short by a
		// restart the startup sweep did not mark: it is retryable.
		if status == model.DownloadRunning {
			status = model.DownloadFailed
		}
	}
	switch status {
	case model.DownloadFailed, model.DownloadCancelled:
	default:
		return Download{}, model.Errorf(model.CodeNotRetryable, "Download %d is %s; only failed or cancelled downloads can be retried.", id, status)
	}
	if kind == model.KindVerify {
		return m.Verify(ctx, presetID)
	}
	if isWorkflowID(presetID) {
		// The files of this very download: another install may have used
		// the same workflow name since.
		if d != nil {
			return m.enqueueWorkflow(ctx, live)
		}
		if wf, ok := m.workflow(id); ok {
			return m.enqueueWorkflow(ctx, wf)
		}
		return Download{}, model.Errorf(model.CodeNotRetryable, "Download %d fetched a workflow's models and is no longer in the live list (it ended before the dashboard restarted, or more than %d downloads ago); check the workflow again to install what is still missing.", id, KeepFinished)
	}
	return m.Install(ctx, presetID)
}

// worker runs queued downloads one at a time until ctx is done.
func (m *Manager) worker(ctx context.Context) {
	for {
		if d, dctx := m.next(ctx); d != nil {
			m.runDownload(ctx, dctx, d)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		}
	}
}

// next takes the oldest queued download and marks it running.
func (m *Manager) next(ctx context.Context) (*download, context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() != nil || len(m.queue) == 0 {
		return nil, nil
	}
	d := m.queue[0]
	m.queue = m.queue[1:]
	if len(m.queue) > 0 {
		m.notify() // another idle worker may take the next one
	}
	dctx, cancel := context.WithCancelCause(ctx)
	d.cancel = cancel
	d.status = model.DownloadRunning
	m.events.push(model.FrameDownload, d.snapshotLocked())
	return d, dctx
}

// interruptQueued ends downloads that never started before shutdown.
func (m *Manager) interruptQueued() {
	m.mu.Lock()
	queued := m.queue
	m.queue = nil
	var snaps []Download
	for _, d := range queued {
		now := m.cfg.Now().UTC()
		d.status, d.completedAt = model.DownloadFailed, &now
		d.err = &model.Error{Code: model.CodeInterrupted, Message: "The dashboard stopped before this download started; retry it."}
		snaps = append(snaps, d.snapshotLocked())
	}
	m.mu.Unlock()
	for i, d := range queued {
		m.finishHistory(d, snaps[i])
		m.publishFinal(snaps[i])
		close(d.done)
	}
	if len(queued) > 0 {
		m.publishPresets()
	}
}

// runDownload fetches the preset's missing files and records the outcome.
// ctx is the download's own (a cancel ends it); runCtx ends only at shutdown.
func (m *Manager) runDownload(runCtx, ctx context.Context, d *download) {
	if d.kind == model.KindVerify {
		m.runVerify(ctx, d)
		return
	}
	began := time.Now()
	m.record(ctx, d.preset, model.ActivityStarted, "Downloading "+d.preset.Name, map[string]any{
		"preset_id": d.preset.ID, "download_id": d.id, "files": d.filesTotal,
	})
	m.log.Info("download started", "download_id", d.id, "preset_id", d.preset.ID)
	m.publishPresets()

	stopProgress := m.startProgress(d)
	err := m.fetchPreset(ctx, d)
	stopProgress()

	cause := context.Cause(ctx)
	status, derr := model.DownloadCompleted, (*model.Error)(nil)
	switch {
	case err == nil:
	case errors.Is(cause, errCancelled):
		status = model.DownloadCancelled
	case ctx.Err() != nil:
		status = model.DownloadFailed
		derr = &model.Error{Code: model.CodeInterrupted, Message: model.InterruptedMessage}
	default:
		status = model.DownloadFailed
		derr = toDownloadError(err)
	}
	// Before the end is announced, so the presets frame it causes shows
	// whose file is in place on a path presets write with different files.
	// Files that landed before a cancel are still checked; a shutdown
	// does not wait for that.
	m.recordFiles(runCtx, d.preset, status == model.DownloadCompleted)

	m.mu.Lock()
	now := m.cfg.Now().UTC()
	d.status, d.err, d.completedAt, d.currentFile = status, derr, &now, ""
	d.cancel(nil)
	snap := d.snapshotLocked()
	m.mu.Unlock()

	m.finishHistory(d, snap)
	m.publishFinal(snap)
	details := map[string]any{
		"preset_id":        d.preset.ID,
		"download_id":      d.id,
		"files":            snap.FilesCompleted,
		"files_total":      snap.FilesTotal,
		"bytes":            snap.BytesDone,
		"duration_seconds": int64(time.Since(began).Round(time.Second) / time.Second),
	}
	switch status {
	case model.DownloadCompleted:
		m.record(ctx, d.preset, model.ActivityCompleted, "Downloaded "+d.preset.Name, details)
		m.log.Info("download completed", "download_id", d.id, "preset_id", d.preset.ID, "bytes", snap.BytesDone)
	case model.DownloadCancelled:
		details["error"] = model.Error{Code: model.CodeCancelled, Message: "Cancelled by the user."}
		m.record(ctx, d.preset, model.ActivityFailed, "Cancelled download of "+d.preset.Name, details)
		m.log.Info("download cancelled", "download_id", d.id, "preset_id", d.preset.ID, "while", "downloading")
	default:
		details["error"] = derr
		m.record(ctx, d.preset, model.ActivityFailed, "Download failed: "+d.preset.Name, details)
		m.log.Warn("download failed", "download_id", d.id, "preset_id", d.preset.ID, "code", derr.Code, "err", derr.Message)
	}
	m.publishPresets()
	close(d.done)
}

// publishFinal announces a download's end. It comes after finishHistory, so
// a client that sees the frame and asks for the history finds the row ended.
// Nothing else is published for a download once it has ended, so the order
// of its frames holds.
func (m *Manager) publishFinal(snap Download) {
	m.mu.Lock()
	m.events.push(model.FrameDownload, snap)
	m.pruneLocked()
	m.mu.Unlock()
}

// finishHistory writes the end of a download to download_history. It runs
// during shutdown too, so it does not use the (cancelled) run context.
func (m *Manager) finishHistory(d *download, snap Download) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	end := model.DownloadEnd{
		Status: snap.Status, Error: snap.Error,
		FilesCompleted: snap.FilesCompleted, FilesTotal: snap.FilesTotal,
		BytesDone: snap.BytesDone, BytesTotal: snap.BytesTotal,
	}
	if err := m.cfg.History.FinishDownload(ctx, d.id, end); err != nil {
		m.log.Error("record download end failed", "download_id", d.id, "err", err)
	}
}

// record writes a download activity row and queues its frame behind the
// download frames already queued, so no client sees "Downloaded X" before
// the download itself has completed.
func (m *Manager) record(ctx context.Context, p Preset, status model.ActivityStatus, title string, details map[string]any) {
	raw, err := json.Marshal(details)
	if err != nil {
		m.log.Error("encode activity details failed", "preset_id", p.ID, "err", err)
		raw = nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// A preset's name and id have no length limit; an activity row has.
	a := model.Activity{
		Type: model.ActivityDownload, Status: status, Details: raw,
		Title:    shorten(title, model.MaxActivityTitle),
		Subtitle: shorten(p.ID, model.MaxActivitySubtitle),
	}
	saved, err := m.cfg.Recorder.Insert(ctx, a)
	if err != nil {
		m.log.Error("record download activity failed", "preset_id", p.ID, "err", err)
		return
	}
	m.events.push(model.FrameActivity, saved)
}

// CloseInterrupted ends the downloads the last run did not finish: their
// download_history rows, still "downloading", become failed/interrupted, and
// each gets a "Download interrupted" activity row so its "Downloading X"
// does not stand alone. Their .part files stay, so Retry resumes them. Call
// it once at startup, before Run.
func (m *Manager) CloseInterrupted(ctx context.Context) error {
	rows, err := m.cfg.History.MarkInterrupted(ctx)
	if err != nil {
		return fmt.Errorf("mark interrupted downloads: %w", err)
	}
	if len(rows) > 0 {
		m.log.Warn("downloads interrupted by the last shutdown marked failed", "count", len(rows))
	}
	for _, r := range rows {
		p, ok := m.Preset(r.PresetID)
		if !ok {
			p = Preset{ID: r.PresetID, Name: r.PresetID}
		}
		title := "Download interrupted: "
		if r.Kind == model.KindVerify {
			title = "Verify interrupted: "
		}
		m.record(ctx, p, model.ActivityFailed, title+p.Name, map[string]any{
			"preset_id": r.PresetID, "download_id": r.ID,
			"files": r.FilesCompleted, "files_total": r.FilesTotal,
			"error": model.Error{Code: model.CodeInterrupted, Message: model.InterruptedMessage},
		})
	}
	return nil
}

// shorten cuts s to at most n bytes on a character boundary, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "…"
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
