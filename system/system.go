// Package system measures the pod for its overview: the workspace volume,
// the models folder, the GPUs, memory and CPU, and ComfyUI's queue as the
// watcher last saw it. It serves GET /api/system and publishes the "system"
// frame every few seconds, but only while someone watches: with no client
// connected it does no work at all.
//
// The models folder is counted by a background walk, at most once a minute
// (less often when a walk is slow, so a network filesystem is never kept
// busy), and kept current in between by the downloader telling it when a
// file lands (Added) or is removed (Removed).
package system

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"dashboard/model"
)

// System is GET /api/system and the data of the "system" frame.
type System struct {
	Volume     Volume    `json:"volume"`
	Models     Models    `json:"models"`
	GPUs       []GPU     `json:"gpus"`
	Memory     Memory    `json:"memory"`
	CPU        CPU       `json:"cpu"`
	ComfyUI    ComfyUI   `json:"comfyui"`
	MeasuredAt time.Time `json:"measured_at"`
}

// Volume is the workspace's filesystem.
type Volume struct {
	Path       string `json:"path"`
	Filesystem string `json:"filesystem"` // "ext4", "nfs4", "fuse.mfsmount", …; "" when unknown
	TotalBytes int64  `json:"total_bytes"`
	UsedBytes  int64  `json:"used_bytes"`
	FreeBytes  int64  `json:"free_bytes"`
	// Source says where the figures come from: SourceStatfs, or
	// SourceConfig when VOLUME_SIZE_GB gives the total (used is then the
	// models folder as counted, free the difference).
	Source string `json:"source"`
}

// Where the volume's figures come from.
const (
	SourceStatfs = "statfs"
	SourceConfig = "config"
)

// Models is the models folder, per top-level folder (checkpoints, loras, …).
type Models struct {
	Bytes   int64    `json:"bytes"`
	Files   int64    `json:"files"`
	Folders []Folder `json:"folders"`
	// CountedAt is when the last walk finished; null before the first.
	CountedAt *time.Time `json:"counted_at"`
}

// Folder is one top-level folder of the models folder. Files lying directly
// in the models folder are counted under the name ".".
type Folder struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
	Files int64  `json:"files"`
}

// GPU is one line of nvidia-smi. Utilisation and temperature are null when
// the GPU does not report them ("[N/A]", as MIG devices do).
type GPU struct {
	Index              int    `json:"index"`
	Name               string `json:"name"`
	MemoryTotalBytes   int64  `json:"memory_total_bytes"`
	MemoryUsedBytes    int64  `json:"memory_used_bytes"`
	UtilizationPercent *int   `json:"utilization_percent"`
	TemperatureC       *int   `json:"temperature_c"`
}

// Memory is the container's memory when it has a cgroup limit, else the
// machine's.
type Memory struct {
	TotalBytes int64  `json:"total_bytes"`
	UsedBytes  int64  `json:"used_bytes"`
	Source     string `json:"source"` // "cgroup" or "host"
}

// CPU is how busy the CPUs this process may use were since the last reading.
type CPU struct {
	Cores   int     `json:"cores"`
	Percent float64 `json:"percent"` // of all Cores, 0–100
}

// ComfyUI is what the watcher's last poll saw.
type ComfyUI struct {
	Watching     bool `json:"watching"` // false when --comfyui-url is empty
	Reachable    bool `json:"reachable"`
	QueueRunning int  `json:"queue_running"`
	QueuePending int  `json:"queue_pending"`
}

// Publisher sends an event to every live client (the realtime hub).
type Publisher interface {
	Publish(typ string, data any)
}

// Config wires a Monitor. Zero values get the defaults noted.
type Config struct {
	Workspace string // statfs'd for the volume
	ModelsDir string // walked for the models
	// VolumeSize, in bytes, replaces statfs's total (VOLUME_SIZE_GB):
	// network volumes often report the whole cluster.
	VolumeSize int64
	ComfyUI    func() ComfyUI // nil: not watched
	Publisher  Publisher
	Logger     *slog.Logger
	Now        func() time.Time

	Interval   time.Duration // between frames while watched; 0 → 5s
	WalkEvery  time.Duration // least time between walks of the models; 0 → 1 min
	GPUTimeout time.Duration // for one nvidia-smi run; 0 → 5s
	GPURetry   time.Duration // wait after nvidia-smi failed; 0 → 1 min
	ProcDir    string        // "" → /proc
	CgroupDir  string        // "" → /sys/fs/cgroup
}

// Monitor measures the pod. Create it with New and run it with Run.
type Monitor struct {
	cfg Config
	log *slog.Logger

	// watching is set by Watch; wake tells Run it changed.
	watching atomic.Bool
	wake     chan struct{}

	models *counter
	gpus   *gpuReader
	cpu    cpuSampler

	volFailing bool // statfs failed last time (logged once); under measureMu

	// measureMu serialises measurements. last is the latest one, reused
	// when asked again within a second; lastMu guards it on its own, so a
	// client connecting never waits for a measurement under way.
	measureMu sync.Mutex
	lastMu    sync.Mutex
	last      *System
}

// New returns a Monitor; nothing runs until Run.
func New(cfg Config) *Monitor {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.WalkEvery <= 0 {
		cfg.WalkEvery = time.Minute
	}
	if cfg.GPUTimeout <= 0 {
		cfg.GPUTimeout = 5 * time.Second
	}
	if cfg.GPURetry <= 0 {
		cfg.GPURetry = time.Minute
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	if cfg.CgroupDir == "" {
		cfg.CgroupDir = "/sys/fs/cgroup"
	}
	return &Monitor{
		cfg:    cfg,
		log:    cfg.Logger,
		wake:   make(chan struct{}, 1),
		models: newCounter(cfg.ModelsDir, cfg.WalkEvery, cfg.Now, cfg.Logger),
		gpus:   newGPUReader(cfg.GPUTimeout, cfg.GPURetry, cfg.Now, cfg.Logger),
	}
}

// Watch is told whether anyone is watching (the hub's OnWatch). It never
// blocks: Run picks the news up.
func (m *Monitor) Watch(watching bool) {
	m.watching.Store(watching)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run publishes a "system" frame as soon as someone watches and then every
// Interval until nobody does, and walks the models folder when asked. It
// returns when ctx is done and its goroutines have ended.
func (m *Monitor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.models.run(ctx)
	}()
	defer func() {
		wg.Wait()
		m.gpus.wait(2 * time.Second)
	}()

	var ticker *time.Ticker
	var tick <-chan time.Time
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
			switch watching := m.watching.Load(); {
			case watching && ticker == nil:
				ticker = time.NewTicker(m.cfg.Interval)
				tick = ticker.C
				m.publish(ctx)
			case !watching && ticker != nil:
				ticker.Stop()
				ticker, tick = nil, nil
			}
		case <-tick:
			if !m.watching.Load() {
				continue // the last client left; wake stops the ticker
			}
			m.publish(ctx)
		case <-m.models.walked:
			// New counts (the first ones, say): show them now rather than
			// at the next tick.
			if ticker != nil && m.watching.Load() {
				m.forget()
				m.publish(ctx)
			}
		}
	}
}

func (m *Monitor) publish(ctx context.Context) {
	if m.cfg.Publisher == nil {
		return // measured on request only
	}
	m.cfg.Publisher.Publish(model.FrameSystem, m.Snapshot(ctx))
}

// forget makes the next Snapshot measure again, however recent the last.
func (m *Monitor) forget() {
	m.lastMu.Lock()
	if m.last != nil {
		m.last.MeasuredAt = time.Time{}
	}
	m.lastMu.Unlock()
}

// fresh is how old a measurement may be and still be answered again.
const fresh = time.Second

// Snapshot measures the pod now (a measurement less than a second old is
// reused) and asks for a walk of the models when the last one is due. It
// never fails: a part that cannot be read is empty, and logged once.
func (m *Monitor) Snapshot(ctx context.Context) System {
	m.measureMu.Lock()
	defer m.measureMu.Unlock()
	now := m.cfg.Now()
	m.lastMu.Lock()
	last := m.last
	m.lastMu.Unlock()
	if last != nil && now.Sub(last.MeasuredAt) < fresh && now.Sub(last.MeasuredAt) >= 0 {
		return *last
	}
	m.models.request()
	vol, fsFree := m.volume()
	s := System{
		Volume:     vol,
		Models:     m.models.snapshot(),
		GPUs:       m.gpus.read(ctx),
		Memory:     readMemory(m.cfg.ProcDir, m.cfg.CgroupDir),
		CPU:        m.cpu.read(m.cfg.ProcDir, m.cfg.CgroupDir, m.cfg.Now),
		MeasuredAt: now.UTC(),
	}
	if m.cfg.ComfyUI != nil {
		s.ComfyUI = m.cfg.ComfyUI()
	}
	if m.cfg.VolumeSize > 0 {
		s.Volume.UsedBytes = s.Models.Bytes + m.models.partBytes()
		s.Volume.FreeBytes = m.configuredFree(fsFree)
	}
	m.lastMu.Lock()
	m.last = &s
	m.lastMu.Unlock()
	return s
}

// Latest is the last measurement if it is recent enough to show a client
// that just connected (two frame intervals), else nil.
func (m *Monitor) Latest() *System {
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	if m.last == nil || m.cfg.Now().Sub(m.last.MeasuredAt) > 2*m.cfg.Interval {
		return nil
	}
	s := *m.last
	return &s
}

// Added tells the monitor a file of size bytes landed at relPath (relative
// to the models folder), so the counts stay current until the next walk.
func (m *Monitor) Added(relPath string, size int64) { m.models.add(relPath, size, 1) }

// Removed tells the monitor the file at relPath, of size bytes, is gone.
func (m *Monitor) Removed(relPath string, size int64) { m.models.add(relPath, -size, -1) }

// FreeSpace is the space left on the volume as the downloader should see it
// before a download: otherwise what statfs says a writer may still use in
// dir; with VOLUME_SIZE_GB set, the configured size less what the models
// folder holds as last counted (the last walk plus the files landed and
// removed since), at most statfs's figure. It never waits for a walk: the
// downloader asks while holding its space book, which every download's
// start and end need, and a walk of a slow network volume takes minutes.
// Before the first walk has ended, the bound is all it knows: the smaller
// of the configured size and statfs's figure.
func (m *Monitor) FreeSpace(dir string) (uint64, error) {
	fsFree, err := statfsFree(dir)
	if m.cfg.VolumeSize <= 0 {
		return fsFree, err
	}
	bound := int64(-1)
	if err == nil {
		bound = int64(min(fsFree, 1<<62))
	}
	m.models.request()
	if !m.models.isCounted() {
		if bound < 0 {
			return 0, fmt.Errorf("the models folder has not been counted yet, and %w", err)
		}
		return uint64(min(bound, m.cfg.VolumeSize)), nil
	}
	return uint64(m.configuredFree(bound)), nil
}
