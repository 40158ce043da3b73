// Package activity is the one way the program writes to the activity log: every
// event is checked, stored and then published to live clients, so the log and
// the dashboards never disagree. It also owns the log's retention.
package activity

import (
	"context"
	"fmt"
	"log/slog"

	"dashboard/model"
)

// Publisher sends an event to every live client.
type Publisher interface {
	Publish(typ string, data any)
}

// Store is the part of the database the log needs.
type Store interface {
	InsertActivity(ctx context.Context, a model.Activity) (model.Activity, error)
	ClearActivity(ctx context.Context) (int64, error)
	CleanupActivity(ctx context.Context, retentionDays int) (int64, error)
}

// Config wires a Log.
type Config struct {
	Store     Store
	Publisher Publisher
	Logger    *slog.Logger
	// RetentionDays returns how many days of activity to keep, read afresh
	// at each cleanup so a changed setting applies on the next one.
	RetentionDays func(ctx context.Context) (int, error)
}

// Log records activity and announces it.
type Log struct {
	store     Store
	pub       Publisher
	log       *slog.Logger
	retention func(ctx context.Context) (int, error)
}

// New returns a Log.
func New(cfg Config) *Log {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetentionDays == nil {
		cfg.RetentionDays = func(context.Context) (int, error) { return model.DefaultRetentionDays, nil }
	}
	return &Log{store: cfg.Store, pub: cfg.Publisher, log: cfg.Logger, retention: cfg.RetentionDays}
}

// Record checks and stores a, then publishes it as an "activity" frame.
func (l *Log) Record(ctx context.Context, a model.Activity) (model.Activity, error) {
	saved, err := l.Insert(ctx, a)
	if err != nil {
		return model.Activity{}, err
	}
	l.pub.Publish(model.FrameActivity, saved)
	return saved, nil
}

// Insert checks and stores a without publishing it: for a caller that
// publishes the saved row itself, in order with frames of its own (the
// downloader sends a download's activity after the download frame it follows).
// A refused activity is a model.CodeInvalidActivity error.
func (l *Log) Insert(ctx context.Context, a model.Activity) (model.Activity, error) {
	if msg := a.Check(); msg != "" {
		return model.Activity{}, model.Errorf(model.CodeInvalidActivity, "The activity's %s.", msg)
	}
	saved, err := l.store.InsertActivity(ctx, a)
	if err != nil {
		return model.Activity{}, fmt.Errorf("record activity: %w", err)
	}
	return saved, nil
}

// Clear deletes every activity row and publishes "activity_cleared".
func (l *Log) Clear(ctx context.Context) (int64, error) {
	n, err := l.store.ClearActivity(ctx)
	if err != nil {
		return 0, fmt.Errorf("clear activity: %w", err)
	}
	l.pub.Publish(model.FrameActivityCleared, map[string]int64{"deleted": n})
	l.log.Info("activity cleared", "deleted", n)
	return n, nil
}

// Expire deletes activity older than the retention setting; it is the
// retention job, run at startup and daily. Failures are logged (and tried
// again on the next run). Deleting old rows is not news for live clients.
func (l *Log) Expire(ctx context.Context) {
	days, err := l.retention(ctx)
	if err != nil {
		l.log.Error("retention cleanup: read setting", "err", err)
		return
	}
	n, err := l.store.CleanupActivity(ctx, days)
	if err != nil {
		l.log.Error("retention cleanup failed", "err", err)
		return
	}
	l.log.Info("retention cleanup done", "deleted", n, "retention_days", days)
}
