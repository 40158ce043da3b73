// Command dashboard is the pod's live dashboard: it installs model presets
// from HuggingFace next to ComfyUI, shows the download queue and activity
// live over one WebSocket, and keeps history and settings in SQLite on the
// workspace volume.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	_ "time/tzdata" // cron schedules need zone data even in a scratch image

	"github.com/robfig/cron/v3"
	"golang.org/x/sync/errgroup"

	"dashboard/activity"
	"dashboard/comfyui"
	"dashboard/db"
	"dashboard/downloader"
	"dashboard/lease"
	"dashboard/model"
	"dashboard/realtime"
	"dashboard/server"
	"dashboard/settings"
	"dashboard/system"
	"dashboard/ui"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// The hub is what the other packages publish through.
var (
	_ downloader.Publisher  = (*realtime.Hub)(nil)
	_ activity.Publisher    = (*realtime.Hub)(nil)
	_ settings.Publisher    = (*realtime.Hub)(nil)
	_ downloader.Recorder   = (*activity.Log)(nil)
	_ activity.Store        = (*db.Store)(nil)
	_ comfyui.Recorder      = (*activity.Log)(nil)
	_ downloader.History    = (*db.Store)(nil)
	_ downloader.Ledger     = (*db.Store)(nil)
	_ comfyui.PromptStore   = (*db.Store)(nil)
	_ settings.Store        = (*db.Store)(nil)
	_ server.KeyStore       = (*db.Store)(nil)
	_ system.Publisher      = (*realtime.Hub)(nil)
	_ downloader.ModelFiles = (*system.Monitor)(nil)
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		addr, _ := os.LookupEnv("DASHBOARD_ADDR")
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		if addr == "" {
			addr = ":8082"
		}
		err = healthcheck(ctx, addr, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.LookupEnv, os.Stderr, hooks{})
	}
	if errors.Is(err, errHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// hooks let tests learn the address and move time.
type hooks struct {
	Now   func() time.Time
	Ready func(addr string)
}

// shutdownTimeout bounds the whole ordered shutdown; hubCloseTimeout is the
// WebSocket clients' part of it.
const (
	shutdownTimeout = 8 * time.Second
	hubCloseTimeout = 2 * time.Second
)

// run starts the dashboard and returns when ctx is done and everything has
// stopped, or when it cannot start.
func run(ctx context.Context, args []string, env func(string) (string, bool), logOut io.Writer, h hooks) error {
	cfg, err := loadConfig(args, env, logOut)
	if err != nil {
		return err
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))
	log.Info("starting dashboard", "version", version, "workspace", cfg.Workspace, "workspace_reason", cfg.WorkspaceReason)

	if err := makeDirs(cfg, log); err != nil {
		return err
	}

	// 1. Only the dashboard holding the volume's writer lease writes to it;
	// the others start read-only and take over when it goes away.
	lse, err := lease.New(lease.Config{Path: filepath.Join(cfg.Workspace, "data", "dashboard.lease"), Node: cfg.NodeName, Logger: log})
	if err != nil {
		return err
	}
	initial, err := lse.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("writer lease: %w", err)
	}
	defer lse.Release() // deferred first, so it runs after the store is closed
	if initial.Writer {
		log.Info("this dashboard is the volume's writer", "node", cfg.NodeName, "node_from", cfg.NodeNameReason)
	} else {
		log.Warn("another dashboard manages this volume; this one is read-only until it stops",
			"node", cfg.NodeName, "node_from", cfg.NodeNameReason, "writer", initial.Holder)
	}

	// 2. Open, migrate and, if needed, recover the database; read-only
	// unless this dashboard is the writer.
	store, err := db.Open(ctx, cfg.DB, db.Options{Logger: log, Now: h.Now, Journal: cfg.DBJournal, ReadOnly: !initial.Writer, Guard: lse.Check})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer store.Close()
	log.Info("database ready", "path", cfg.DB, "journal_mode", store.JournalMode())

	// The monitor measures the pod only while someone watches: the hub
	// tells it when the first client arrives and the last one leaves. No
	// client can connect before the monitor exists (nothing listens yet).
	var mon *system.Monitor
	hub := realtime.New(realtime.Options{Logger: log, OnWatch: func(w bool) { mon.Watch(w) }})

	// 3. Settings, with HF_TOKEN and CIVITAI_TOKEN as the fallback tokens.
	sets := settings.New(settings.Config{
		Store: store, Publisher: hub, Logger: log, EnvToken: cfg.HFToken, HFEndpoint: cfg.HFEndpoint,
		CivitaiEnvToken: cfg.CivitaiToken, CivitaiEndpoint: cfg.CivitaiEndpoint,
	})
	acts := activity.New(activity.Config{Store: store, Publisher: hub, Logger: log, RetentionDays: sets.RetentionDays})
	if cfg.HFToken != "" {
		log.Info("HF_TOKEN is set; it is used when no token is saved in settings")
	}
	if cfg.CivitaiToken != "" {
		log.Info("CIVITAI_TOKEN is set; it is used when no Civitai token is saved in settings")
	}

	watcher, err := comfyui.New(comfyui.Config{URL: cfg.ComfyUIURL, Recorder: acts, Prompts: store, Logger: log, Now: h.Now})
	if err != nil {
		return fmt.Errorf("start comfyui watcher: %w", err)
	}
	// The pod at a glance: it measures only while someone watches, read-only
	// dashboards included.
	mon = system.New(system.Config{
		Workspace: cfg.Workspace, ModelsDir: cfg.Models, VolumeSize: cfg.VolumeSize,
		ComfyUI: func() system.ComfyUI {
			st := watcher.Status()
			return system.ComfyUI{Watching: st.Watching, Reachable: st.Reachable, QueueRunning: st.QueueRunning, QueuePending: st.QueuePending}
		},
		Publisher: hub, Logger: log, Now: h.Now,
	})
	if cfg.VolumeSize > 0 {
		log.Info("volume size set by VOLUME_SIZE_GB; free space is that less the models folder", "bytes", cfg.VolumeSize)
	}

	dlCfg := downloader.Config{
		PresetsFile: cfg.Presets, ModelsDir: cfg.Models, HFEndpoint: cfg.HFEndpoint,
		Token: sets.Token, CivitaiEndpoint: cfg.CivitaiEndpoint, CivitaiToken: sets.CivitaiToken, History: store, Files: store, Recorder: acts, Publisher: hub,
		Logger: log, Now: h.Now, Concurrency: cfg.DownloadConcurrency, Connections: cfg.DownloadConnections,
		ModelFiles: mon,
	}
	if cfg.VolumeSize > 0 {
		// statfs would answer with the cluster's free space.
		dlCfg.FreeSpace = mon.FreeSpace
	}
	dl, err := downloader.New(dlCfg)
	if err != nil {
		return fmt.Errorf("start downloader: %w", err)
	}
	cronLog := cronLogger{log}
	jobs := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cronLog),
		cron.WithChain(cron.SkipIfStillRunning(cronLog), cron.Recover(cronLog)))
	if _, err := jobs.AddFunc("@daily", func() { acts.Expire(context.Background()) }); err != nil {
		return fmt.Errorf("schedule retention: %w", err)
	}

	// 4. What the writer does first: --retention-days replaces the saved
	// setting, downloads that were running when the last writer stopped have
	// failed, and old activity goes (again daily, by the cron job).
	begin := func(ctx context.Context) error {
		if cfg.RetentionDaysSet {
			if err := store.SetSettings(ctx, map[string]string{model.SettingRetentionDays: strconv.Itoa(cfg.RetentionDays)}); err != nil {
				return fmt.Errorf("save retention days: %w", err)
			}
		}
		if err := dl.CloseInterrupted(ctx); err != nil {
			return err
		}
		acts.Expire(ctx)
		return nil
	}
	if initial.Writer {
		if err := begin(ctx); err != nil {
			return err
		}
	}
	role := newWriterRole(&writerRole{
		lease: lse, store: store, pub: hub, log: log, node: cfg.NodeName, begin: begin,
		jobs: []func(context.Context) error{
			dl.Run,
			// Every dashboard polls its pod's ComfyUI (below); only the
			// writer logs what it sees.
			watcher.Record,
			func(ctx context.Context) error {
				jobs.Start()
				<-ctx.Done()
				<-jobs.Stop().Done()
				return nil
			},
		},
	}, initial)

	sessionKey, err := server.SessionKey(ctx, store)
	if err != nil && !initial.Writer {
		// A read-only dashboard may find no key it can read or save: it signs
		// with one of its own, and its logins end when it restarts.
		log.Info("session key not readable or not saved; logins here last until restart", "err", err)
		sessionKey, err = make([]byte, 32), nil
		rand.Read(sessionKey)
	}
	if err != nil {
		return err
	}
	hostname, err := os.Hostname()
	if err != nil {
		log.Warn("hostname unknown; requests must use another of the dashboard's names", "err", err)
	}
	srv := server.New(server.Config{
		Version: version, Store: store, Hub: hub, Activity: acts, Settings: sets,
		Downloads: dl, ModelsDir: cfg.Models, System: mon, Logger: log, UI: ui.Handler(ui.Limits{MinRetentionDays: model.MinRetentionDays, MaxRetentionDays: model.MaxRetentionDays}), Password: cfg.Password, SessionKey: sessionKey,
		Mode:     role.Mode,
		Hostname: hostname, AllowedHosts: cfg.AllowedHosts, TrustedProxies: cfg.TrustedProxies,
	})

	// 5. Serve.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.Password == "" {
		log.Warn("no password set: anyone who can reach this port can use the dashboard and its HuggingFace token; set --password or DASHBOARD_PASSWORD")
	}
	log.Info("listening", "addr", ln.Addr().String())
	if h.Ready != nil {
		h.Ready(ln.Addr().String())
	}

	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	leaseCtx, stopLease := context.WithCancel(context.Background())
	defer stopLease()
	var g, leaseGroup errgroup.Group
	serveErr := make(chan error, 1)
	g.Go(func() error { serveErr <- srv.Serve(ln); return nil })
	g.Go(func() error { return role.Run(bgCtx, initial) })
	g.Go(func() error { return mon.Run(bgCtx) })
	g.Go(func() error { return dl.WatchPresets(bgCtx) }) // read-only too
	g.Go(func() error { return watcher.Run(bgCtx) })
	leaseGroup.Go(func() error { return lse.Run(leaseCtx) })

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-serveErr:
		log.Error("server stopped unexpectedly", "err", runErr)
	}

	// Ordered shutdown: stop accepting, close the hub, stop HTTP, stop
	// background jobs, stop renewing the lease, then (deferred above) close
	// the DB and only then give the lease up, so the next writer never
	// overlaps this one.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	ln.Close()
	// A client that stopped reading must not hold the shutdown past its
	// budget: the hub drops whoever is left after hubCloseTimeout.
	hctx, hcancel := context.WithTimeout(sctx, hubCloseTimeout)
	hub.Close(hctx)
	hcancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("http shutdown", "err", err)
	}
	stopBackground()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("background job ended with an error", "err", err)
	}
	stopLease()
	_ = leaseGroup.Wait()
	log.Info("stopped")
	return runErr
}

// makeDirs creates the folders the dashboard writes to; the data folder holds
// the token, so only its owner may enter it.
func makeDirs(cfg config, log *slog.Logger) error {
	for _, d := range []string{cfg.Workspace, filepath.Dir(cfg.Presets), cfg.Models} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create folder: %w", err)
		}
	}
	// The database's folder, and the workspace's data folder for the lease.
	for _, dataDir := range []string{filepath.Dir(cfg.DB), filepath.Join(cfg.Workspace, "data")} {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fmt.Errorf("create data folder: %w", err)
		}
		if st, err := os.Stat(dataDir); err == nil && st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(dataDir, 0o700); err != nil {
				log.Warn("data folder is readable by others and could not be restricted", "path", dataDir, "err", err)
			}
		}
	}
	return nil
}

// cronLogger sends cron's own messages to slog.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
