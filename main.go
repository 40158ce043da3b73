// Command dashboard is the pod's live dashboard: it installs model presets
// from HuggingFace next to ComfyUI, shows the download queue and activity
// live over one WebSocket, and keeps history and settings in SQLite on the
// workspace volume.
package main

import (
	"context"
	"encoding/json"
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
	"dashboard/realtime"
	"dashboard/server"
	"dashboard/settings"
	"dashboard/ui"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// The hub is what the other packages publish through.
var (
	_ downloader.Publisher = (*realtime.Hub)(nil)
	_ activity.Publisher   = (*realtime.Hub)(nil)
	_ settings.Publisher   = (*realtime.Hub)(nil)
	_ downloader.Recorder  = (*activity.Log)(nil)
	_ comfyui.Recorder     = (*activity.Log)(nil)
	_ downloader.History   = (*db.Store)(nil)
	_ comfyui.PromptStore  = (*db.Store)(nil)
	_ settings.Store       = (*db.Store)(nil)
	_ activity.Store       = (*db.Store)(nil)
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

// shutdownTimeout bounds the whole ordered shutdown.
const shutdownTimeout = 8 * time.Second

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

	// 1. Open, migrate and, if needed, recover the database.
	store, err := db.Open(ctx, cfg.DB, db.Options{Logger: log, Now: h.Now})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer store.Close()
	log.Info("database ready", "path", cfg.DB, "journal_mode", store.JournalMode())

	hub := realtime.New(realtime.Options{Logger: log})
	acts := activity.New(store, hub, log)

	// 2. Settings, with HF_TOKEN as the fallback token.
	sets := settings.New(settings.Config{Store: store, Publisher: hub, Logger: log, EnvToken: cfg.HFToken, HFEndpoint: cfg.HFEndpoint})
	if cfg.RetentionDaysSet {
		if err := store.SetSettings(ctx, map[string]string{settings.KeyRetentionDays: strconv.Itoa(cfg.RetentionDays)}); err != nil {
			return fmt.Errorf("save retention days: %w", err)
		}
	}
	if cfg.HFToken != "" {
		log.Info("HF_TOKEN is set; it is used when no token is saved in settings")
	}

	// 3. Retention cleanup, now and daily.
	cleanup := retentionJob(store, sets, log, h.Now)
	cleanup(ctx)

	// 4. Downloads that were running when the dashboard stopped have failed.
	interrupted, err := store.MarkInterrupted(ctx)
	if err != nil {
		return fmt.Errorf("mark interrupted downloads: %w", err)
	}
	if len(interrupted) > 0 {
		log.Warn("downloads interrupted by the last shutdown marked failed", "count", len(interrupted))
	}

	dl, err := downloader.New(downloader.Config{
		PresetsFile: cfg.Presets, ModelsDir: cfg.Models, HFEndpoint: cfg.HFEndpoint,
		Token: sets.Token, History: store, Recorder: acts, Publisher: hub,
		Logger: log, Now: h.Now, Concurrency: cfg.DownloadConcurrency,
	})
	if err != nil {
		return fmt.Errorf("start downloader: %w", err)
	}
	recordInterrupted(ctx, acts, dl, interrupted, log)
	watcher, err := comfyui.New(comfyui.Config{URL: cfg.ComfyUIURL, Recorder: acts, Prompts: store, Logger: log, Now: h.Now})
	if err != nil {
		return fmt.Errorf("start comfyui watcher: %w", err)
	}
	sessionKey, err := server.SessionKey(ctx, store)
	if err != nil {
		return err
	}
	srv := server.New(server.Config{
		Version: version, Store: store, Hub: hub, Activity: acts, Settings: sets,
		Downloads: dl, Logger: log, UI: ui.Handler(), Password: cfg.Password, SessionKey: sessionKey,
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

	cronLog := cronLogger{log}
	jobs := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cronLog),
		cron.WithChain(cron.SkipIfStillRunning(cronLog), cron.Recover(cronLog)))
	if _, err := jobs.AddFunc("@daily", func() { cleanup(context.Background()) }); err != nil {
		return fmt.Errorf("schedule retention: %w", err)
	}
	jobs.Start()

	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	var g errgroup.Group
	serveErr := make(chan error, 1)
	g.Go(func() error { serveErr <- srv.Serve(ln); return nil })
	g.Go(func() error { return dl.Run(bgCtx) })
	g.Go(func() error { return watcher.Run(bgCtx) })

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-serveErr:
		log.Error("server stopped unexpectedly", "err", runErr)
	}

	// Ordered shutdown: stop accepting, close the hub, stop HTTP, stop
	// background jobs, close the DB (deferred above).
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	ln.Close()
	hub.Close()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("http shutdown", "err", err)
	}
	<-jobs.Stop().Done()
	stopBackground()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("background job ended with an error", "err", err)
	}
	log.Info("stopped")
	return runErr
}

// recordInterrupted closes, in the activity log, the downloads the last run
// did not finish: their "started" row would otherwise stand alone.
func recordInterrupted(ctx context.Context, acts *activity.Log, dl *downloader.Manager, rows []db.DownloadRecord, log *slog.Logger) {
	for _, r := range rows {
		name := r.PresetID
		if p, ok := dl.Preset(r.PresetID); ok {
			name = p.Name
		}
		details, _ := json.Marshal(map[string]any{
			"preset_id": r.PresetID, "download_id": r.ID,
			"files": r.FilesCompleted, "files_total": r.FilesTotal,
			"error": map[string]string{"code": "interrupted", "message": "the dashboard stopped while this download ran; retry it to resume"},
		})
		if _, err := acts.Record(ctx, db.Activity{
			Type: db.TypeDownload, Status: db.StatusFailed,
			Title: "Download interrupted: " + name, Subtitle: r.PresetID, Details: details,
		}); err != nil {
			log.Error("record interrupted download", "download_id", r.ID, "err", err)
		}
	}
}

// makeDirs creates the folders the dashboard writes to; the data folder holds
// the token, so only its owner may enter it.
func makeDirs(cfg config, log *slog.Logger) error {
	dataDir := filepath.Dir(cfg.DB)
	for _, d := range []string{cfg.Workspace, filepath.Dir(cfg.Presets), cfg.Models} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create folder: %w", err)
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	if st, err := os.Stat(dataDir); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dataDir, 0o700); err != nil {
			log.Warn("data folder is readable by others and could not be restricted", "path", dataDir, "err", err)
		}
	}
	return nil
}

// retentionJob deletes activity older than the retention setting, and
// forgets ComfyUI prompts long gone from ComfyUI's history.
func retentionJob(store *db.Store, sets *settings.Service, log *slog.Logger, now func() time.Time) func(context.Context) {
	return func(ctx context.Context) {
		days, err := sets.RetentionDays(ctx)
		if err != nil {
			log.Error("retention cleanup: read setting", "err", err)
			return
		}
		n, err := store.CleanupActivity(ctx, days)
		if err != nil {
			log.Error("retention cleanup failed", "err", err)
			return
		}
		if _, err := store.DeletePromptsBefore(ctx, now().AddDate(0, 0, -promptMemoryDays)); err != nil {
			log.Error("forget old comfyui prompts", "err", err)
		}
		log.Info("retention cleanup done", "deleted", n, "retention_days", days)
	}
}

// promptMemoryDays is how long a ComfyUI prompt id is remembered as logged;
// ComfyUI keeps history only in memory, so a pod never shows older ones.
const promptMemoryDays = 180

// cronLogger sends cron's own messages to slog.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
