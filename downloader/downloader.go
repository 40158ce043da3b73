// Package downloader installs model presets: it reads presets.yaml (and
// notices when it changes), keeps the download queue, and fetches files from
// HuggingFace, Civitai or any HTTP server into the models folder.
//
// Files are written to "<final>.part", verified (SHA-256 from the preset,
// HuggingFace's ETag or Civitai's API) and renamed into place, so a final
// path never holds a partial file. Large files come over several
// connections at once, each writing its ranges into the one .part; a state
// file beside it names the ranges on disk, so a retry, even after a crash,
// fetches only what is missing. Nothing is resumed on its own after a
// restart. Everything under the models folder is written through an
// os.Root, so a symbolic link cannot lead a download out of it.
//
// The files: service.go (the hosts with tokens: endpoints, which token goes
// where, redirects, expired links, errors), hf.go and civitai.go (what is
// each one's own), transfer.go (one file: probe, resume, verify, place),
// pipe.go (ranges, connections and the in-order hash), partfile.go (the
// locked .part and its state), fetch.go and queue.go (the Manager's side).
//
// Sizes: human sizes in presets.yaml are decimal, as HuggingFace shows them
// (1GB = 10^9 bytes, 1MB = 10^6); GiB/MiB are accepted and binary.
package downloader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"dashboard/model"
)

// Publisher sends an event to every live client (the realtime hub).
type Publisher interface {
	Publish(typ string, data any)
}

// Recorder checks and stores an activity row without announcing it: the
// downloader publishes the saved row itself, in order with its own frames.
type Recorder interface {
	Insert(ctx context.Context, a model.Activity) (model.Activity, error)
}

// History is the download_history table.
type History interface {
	StartDownload(ctx context.Context, presetID string, filesTotal int) (model.DownloadRecord, error)
	StartVerify(ctx context.Context, presetID string, filesTotal int) (model.DownloadRecord, error)
	FinishDownload(ctx context.Context, id int64, end model.DownloadEnd) error
	GetDownload(ctx context.Context, id int64) (model.DownloadRecord, error)
	MarkInterrupted(ctx context.Context) ([]model.DownloadRecord, error)
}

// Config wires a Manager. Zero values get the defaults noted.
type Config struct {
	PresetsFile string
	ModelsDir   string
	// HFEndpoint replaces https://huggingface.co in preset URLs (mirrors,
	// tests). The token is only ever sent to this host.
	HFEndpoint string
	// Token returns the current HuggingFace token, "" if none.
	Token   func(ctx context.Context) string
	History History
	// Files remembers which file is in place on a path presets share;
	// nil keeps that in memory only, for the life of the Manager.
	Files     Ledger
	Recorder  Recorder
	Publisher Publisher
	Logger    *slog.Logger
	Now       func() time.Time

	Concurrency int // presets installed at once; 0 → 1
	// Connections is how many connections fetch one file of
	// SegmentedMinSize or more from a server that honours Range;
	// 0 → DefaultConnections.
	Connections  int
	HTTPClient   *http.Client  // nil → a client tuned for large files
	PollInterval time.Duration // presets.yaml change check; 0 → 2s
	StallTimeout time.Duration // no bytes for this long → transient error; 0 → 60s
	// SlowAfter: a connection that delivered nothing this long while
	// others wait for it loses its range to another; 0 → 5s.
	SlowAfter  time.Duration
	RetryBase  time.Duration // backoff base; 0 → 1s
	MaxRetries int           // attempts after the first without progress; 0 → 5
	// FreeSpace reports the bytes available in dir; nil → statfs.
	FreeSpace func(dir string) (uint64, error)

	window int64 // the hash window; 0 → defaultWindow (tests shrink it)
	// writeFault, when set, can fail a write into a .part before it is
	// made: tests stand in for a disk that fills mid-file.
	writeFault func(off, n int64) error
	// ModelFiles, when set, hears of files landing in the models folder.
	ModelFiles ModelFiles

	// CivitaiEndpoint replaces https://civitai.com (and civitai.green,
	// civitai.red) in preset URLs; CivitaiToken goes only to this host.
	CivitaiEndpoint string
	// CivitaiToken returns the current Civitai token, "" if none.
	CivitaiToken func(ctx context.Context) string
}

// ModelFiles hears about files landing in (and leaving) the models folder,
// so the pod's overview stays current between its walks of the folder.
type ModelFiles interface {
	Added(relPath string, size int64)
	Removed(relPath string, size int64)
}

// Manager owns the presets, the queue and the workers.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	services services     // the hosts with tokens: hf, civitai
	hf       *service     // HuggingFace at HFEndpoint
	civitai  *service     // Civitai at CivitaiEndpoint
	versions versionCache // what Civitai's API said of model versions
	client   *http.Client // follows redirects, strips the token off-host
	headCli  *http.Client // never follows redirects: token probes, Civitai's API, link renewals
	events   *eventQueue
	paths    *pathLocks
	space    *spaceBook
	bufs     *sync.Pool // *[]byte of bufSize, shared by transfers
	// checksums are asked, in order, for the SHA-256 a verify checks a
	// file against when the preset gives none.
	checksums []checksumSource

	// presetsMu makes reading the presets' state and queueing the presets
	// frame one step, so frames go out in the order the states were read.
	presetsMu sync.Mutex

	mu        sync.Mutex
	presets   map[string]Preset
	loadErr   string
	warnings  []string                     // about presets.yaml, for PresetList
	conflicts map[string][]sharer          // paths presets write with different files
	owners    map[string]model.ModelFile   // whose file is in place, on those paths
	corrupt   map[string]model.CorruptFile // files a verify found corrupt, by path
	fileStamp fileStamp
	downloads []*download     // every download since start, oldest first
	queue     []*download     // waiting for a worker, in order asked
	reserved  map[string]bool // presets being queued right now
	// workflows are the files of each workflow download queued since the
	// start, by download id, for Retry (after a restart they are gone).
	workflows map[int64]Preset
	running   bool
	wake      chan struct{}
	// identify asks for the files on shared paths that no record names to
	// be hashed; unknown holds those hashed already that matched nobody.
	identify chan struct{}
	unknown  map[string]fileStamp
}

// New checks cfg and loads the presets, writing a default presets file if
// there is none. A presets file that cannot be parsed is not an error here:
// it is reported by Presets and the log, and fixed files are picked up.
func New(cfg Config) (*Manager, error) {
	if cfg.PresetsFile == "" || cfg.ModelsDir == "" {
		return nil, errors.New("downloader: presets file and models folder are required")
	}
	if cfg.History == nil || cfg.Recorder == nil || cfg.Publisher == nil {
		return nil, errors.New("downloader: history, recorder and publisher are required")
	}
	if cfg.HFEndpoint == "" {
		cfg.HFEndpoint = "https://huggingface.co"
	}
	hfEP, err := parseEndpoint("huggingface", cfg.HFEndpoint)
	if err != nil {
		return nil, err
	}
	if cfg.CivitaiEndpoint == "" {
		cfg.CivitaiEndpoint = "https://civitai.com"
	}
	civitaiEP, err := parseEndpoint("civitai", cfg.CivitaiEndpoint)
	if err != nil {
		return nil, err
	}
	none := func(context.Context) string { return "" }
	if cfg.Token == nil {
		cfg.Token = none
	}
	if cfg.CivitaiToken == nil {
		cfg.CivitaiToken = none
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Connections <= 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.Connections > MaxConnections {
		return nil, fmt.Errorf("downloader: at most %d connections per file, not %d", MaxConnections, cfg.Connections)
	}
	if cfg.SlowAfter <= 0 {
		cfg.SlowAfter = 5 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 60 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.FreeSpace == nil {
		cfg.FreeSpace = freeSpace
	}
	base := cfg.HTTPClient
	if base == nil {
		base = defaultClient()
	}
	m := &Manager{
		cfg:       cfg,
		log:       cfg.Logger,
		hf:        huggingFace(hfEP, cfg.Token),
		civitai:   civitai(civitaiEP, cfg.CivitaiToken),
		versions:  versionCache{m: map[int64]cachedVersion{}},
		client:    guardedClient(base),
		headCli:   noRedirectClient(base),
		events:    newEventQueue(),
		paths:     newPathLocks(),
		space:     &spaceBook{dir: cfg.ModelsDir, free: cfg.FreeSpace, log: cfg.Logger, held: map[int64]int64{}},
		bufs:      newBufPool(),
		presets:   map[string]Preset{},
		conflicts: map[string][]sharer{},
		owners:    map[string]model.ModelFile{},
		corrupt:   map[string]model.CorruptFile{},
		reserved:  map[string]bool{},
		workflows: map[int64]Preset{},
		wake:      make(chan struct{}, 1),
		identify:  make(chan struct{}, 1),
		unknown:   map[string]fileStamp{},
	}
	m.services = services{m.hf, m.civitai}
	if _, err := os.Stat(cfg.PresetsFile); errors.Is(err, os.ErrNotExist) {
		if err := writeDefaultPresets(cfg.PresetsFile); err != nil {
			return nil, err
		}
		m.log.Info("wrote default presets file", "path", cfg.PresetsFile)
	}
	// HuggingFace states the SHA-256 of its LFS files. Civitai's source (its
	// model-versions API states each file's SHA256) belongs after it here.
	m.checksums = []checksumSource{hfChecksums{m}, civitaiChecksums{m}}
	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	m.loadOwners(lctx)
	cancel()
	m.reloadPresets()
	return m, nil
}

// Run starts the workers and the presets watcher and blocks until ctx is
// done and in-flight downloads have stopped. Downloads stopped this way are
// recorded as failed with "interrupted"; their .part files are kept so a
// retry resumes them.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("downloader: already running")
	}
	m.running = true
	m.mu.Unlock()

	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		m.events.run(pubCtx, m.cfg.Publisher)
	}()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.watchPresets(ctx, true)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.identifyLoop(ctx)
	}()
	for range m.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.worker(ctx)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	m.interruptQueued()

	stopPub()
	pubWG.Wait()
	m.events.flush(m.cfg.Publisher) // the last status frames still reach clients

	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
	return nil
}

// PresetList is GET /api/presets and the data of the "presets" frame.
type PresetList struct {
	Presets []Preset `json:"presets"`
	Error   *string  `json:"error"` // why presets.yaml could not be (fully) used
	// Warnings are sentences about presets.yaml that do not stop it loading.
	Warnings []string `json:"warnings"`
}

// PresetList returns every preset with its install state and the file's problem.
func (m *Manager) PresetList() PresetList {
	ps, loadErr := m.Presets()
	m.mu.Lock()
	l := PresetList{Presets: ps, Warnings: append([]string{}, m.warnings...)}
	m.mu.Unlock()
	if loadErr != "" {
		l.Error = &loadErr
	}
	return l
}

// publishPresets queues the "presets" frame: presets.yaml changed, or a
// preset's install state may have (a download was queued, started or ended,
// or a file landed).
func (m *Manager) publishPresets() {
	m.presetsMu.Lock()
	defer m.presetsMu.Unlock()
	m.events.push(model.FramePresets, m.PresetList())
}

// Presets returns every preset with its install state, sorted by category
// then name, and why the presets file could not be (fully) used, "" if fine.
func (m *Manager) Presets() ([]Preset, string) {
	m.mu.Lock()
	ps := make([]Preset, 0, len(m.presets))
	for _, p := range m.presets {
		ps = append(ps, p)
	}
	loadErr := m.loadErr
	active := m.activeLocked()
	m.mu.Unlock()

	for i := range ps {
		ps[i] = m.withState(ps[i], active)
	}
	sortPresets(ps)
	if ps == nil {
		ps = []Preset{}
	}
	return ps, loadErr
}

// Preset returns one preset with its install state.
func (m *Manager) Preset(id string) (Preset, bool) {
	m.mu.Lock()
	p, ok := m.presets[id]
	active := m.activeLocked()
	m.mu.Unlock()
	if !ok {
		return Preset{}, false
	}
	return m.withState(p, active), true
}

// activeLocked maps preset ids to the status of their queued or running
// install. A verify changes nothing on disk, so it leaves the preset's
// status as the disk has it.
func (m *Manager) activeLocked() map[string]string {
	active := map[string]string{}
	for _, d := range m.downloads {
		if d.kind == model.KindVerify {
			continue
		}
		switch d.status {
		case model.DownloadQueued:
			if active[d.preset.ID] == "" {
				active[d.preset.ID] = PresetQueued
			}
		case model.DownloadRunning:
			active[d.preset.ID] = PresetDownloading
		}
	}
	return active
}

// withState fills in the install state from the disk and the queue.
func (m *Manager) withState(p Preset, active map[string]string) Preset {
	files := make([]PresetFile, len(p.Files))
	copy(files, p.Files)
	p.Files = files
	installed, partial := 0, false
	for i := range p.Files {
		f := &p.Files[i]
		f.Installed, f.Corrupt = m.fileState(*f)
		if f.Installed {
			installed++
		} else if f.Corrupt {
			partial = true
		} else if st, err := os.Stat(m.finalPath(*f) + partSuffix); err == nil && st.Size() > 0 {
			partial = true
		}
	}
	switch {
	case active[p.ID] != "":
		p.Status = active[p.ID]
	case installed == len(p.Files):
		p.Status = PresetInstalled
	case installed > 0 || partial:
		p.Status = PresetPartial
	default:
		p.Status = PresetMissing
	}
	return p
}

// installed says whether f's final file is in place.
func (m *Manager) installed(f PresetFile) bool {
	ok, _ := m.fileState(f)
	return ok
}

// fileState says whether f's final file is in place and, when it is not,
// whether the file there is f's but a verify found it corrupt. Human sizes
// are rough, so only an exact byte count is compared; the final path only
// ever holds complete files, so existing is enough otherwise. On a path
// presets write with different files (different sha256), the file must
// also be f's own.
func (m *Manager) fileState(f PresetFile) (installed, corrupt bool) {
	st, err := os.Stat(m.finalPath(f))
	if err != nil || !st.Mode().IsRegular() {
		return false, false
	}
	if f.exact && st.Size() != f.SizeBytes {
		return false, false
	}
	if f.sha256 != "" && m.conflicted(f.Path) && !m.owned(f, st) {
		return false, false
	}
	if m.corruptAt(f.Path, st) {
		return false, true
	}
	return true, false
}

func (m *Manager) finalPath(f PresetFile) string {
	return filepath.Join(m.cfg.ModelsDir, filepath.FromSlash(f.Path))
}

// fileStamp identifies a version of the presets file without reading it.
type fileStamp struct {
	exists  bool
	modTime time.Time
	size    int64
}

func statPresets(file string) (fileStamp, error) {
	st, err := os.Stat(file)
	if errors.Is(err, os.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{exists: true, modTime: st.ModTime(), size: st.Size()}, nil
}

// watchPresets polls the presets file. Polling (not inotify) because the
// file usually lives on a network volume where change events do not arrive.
// Run's watcher (inRun) follows the file while Run runs, WatchPresets's
// while it does not, so exactly one of them does at any time: Run's frame
// goes out through the event queue, in order with the download frames, and
// a path may have become shared; without Run no queue runs and the frame
// goes out directly.
func (m *Manager) watchPresets(ctx context.Context, inRun bool) {
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		mine := m.running == inRun
		m.mu.Unlock()
		if !mine || !m.presetsChanged() {
			continue
		}
		m.reloadPresets()
		if inRun {
			m.publishPresets()
			m.askIdentify()
			continue
		}
		m.presetsMu.Lock()
		m.cfg.Publisher.Publish(model.FramePresets, m.PresetList())
		m.presetsMu.Unlock()
	}
}

// presetsChanged reports whether the presets file changed since it was
// read; a file that cannot be looked at (a flaky volume) has not.
func (m *Manager) presetsChanged() bool {
	stamp, err := statPresets(m.cfg.PresetsFile)
	if err != nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return stamp != m.fileStamp
}

// WatchPresets follows the presets file while Run does not run (on a
// read-only dashboard, which runs no downloads), so its pages and GETs
// show edits too. It returns when ctx ends.
func (m *Manager) WatchPresets(ctx context.Context) error {
	m.watchPresets(ctx, false)
	return nil
}

// reloadPresets reads the presets file. On a syntax error the last good
// presets stay in use; per-preset problems drop only those presets.
func (m *Manager) reloadPresets() {
	stamp, _ := statPresets(m.cfg.PresetsFile)
	data, err := os.ReadFile(m.cfg.PresetsFile)
	if err != nil {
		msg := fmt.Sprintf("read %s: %v", m.cfg.PresetsFile, unwrapPathErr(err))
		m.log.Error("presets file unreadable", "path", m.cfg.PresetsFile, "err", err)
		m.mu.Lock()
		m.loadErr, m.fileStamp = msg, stamp
		m.mu.Unlock()
		return
	}
	res, err := parsePresets(data)
	if err != nil {
		msg := fmt.Sprintf("%s: %v (still using the last presets that loaded)", m.cfg.PresetsFile, err)
		m.log.Error("presets file invalid", "path", m.cfg.PresetsFile, "err", err)
		m.mu.Lock()
		m.loadErr, m.fileStamp = msg, stamp
		m.mu.Unlock()
		return
	}
	conflicts, shared := sharedPaths(res.presets)
	warnings := append(res.warnings, shared...)
	for _, w := range warnings {
		m.log.Warn("presets file warning", "path", m.cfg.PresetsFile, "detail", w)
	}
	for _, p := range res.problems {
		m.log.Error("preset refused", "path", m.cfg.PresetsFile, "detail", p)
	}
	m.mu.Lock()
	m.presets, m.fileStamp = res.presets, stamp
	m.loadErr = strings.Join(res.problems, "; ")
	m.warnings, m.conflicts = warnings, conflicts
	m.mu.Unlock()
	m.log.Info("presets loaded", "path", m.cfg.PresetsFile, "presets", len(res.presets), "refused", len(res.problems))
}

// unwrapPathErr drops the path from an *os.PathError the caller already names.
func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
