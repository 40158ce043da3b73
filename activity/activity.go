// Package activity is the one way the program writes to the activity log: every
// event is stored and then published to live clients, so the log and the
// dashboards never disagree.
package activity

import (
	"context"
	"fmt"
	"log/slog"

	"dashboard/db"
)

// Publisher sends an event to every live client.
type Publisher interface {
	Publish(typ string, data any)
}

// Store is the part of the database the log needs.
type Store interface {
	InsertActivity(ctx context.Context, a db.Activity) (db.Activity, error)
	ClearActivity(ctx context.Context) (int64, error)
}

// Log records activity and announces it.
type Log struct {
	store Store
	pub   Publisher
	log   *slog.Logger
}

// New returns a Log writing to store and publishing through pub.
func New(store Store, pub Publisher, log *slog.Logger) *Log {
	return &Log{store: store, pub: pub, log: log}
}

// Record validates and stores a, then publishes it as an "activity" frame.
func (l *Log) Record(ctx context.Context, a db.Activity) (db.Activity, error) {
	if err := Validate(a); err != nil {
		return db.Activity{}, err
	}
	saved, err := l.store.InsertActivity(ctx, a)
	if err != nil {
		return db.Activity{}, fmt.Errorf("record activity: %w", err)
	}
	l.pub.Publish("activity", saved)
	return saved, nil
}

// Clear deletes every activity row and publishes "activity_cleared".
func (l *Log) Clear(ctx context.Context) (int64, error) {
	n, err := l.store.ClearActivity(ctx)
	if err != nil {
		return 0, fmt.Errorf("clear activity: %w", err)
	}
	l.pub.Publish("activity_cleared", map[string]int64{"deleted": n})
	l.log.Info("activity cleared", "deleted", n)
	return n, nil
}

// InvalidError says why an activity was refused.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

// CheckType says why t is not an activity type, or returns nil.
func CheckType(t string) error {
	switch t {
	case db.TypeDownload, db.TypeGeneration, db.TypeError:
		return nil
	}
	return &InvalidError{fmt.Sprintf("type must be one of download, generation, error (got %q)", t)}
}

// CheckStatus says why s is not an activity status, or returns nil.
func CheckStatus(s string) error {
	switch s {
	case db.StatusStarted, db.StatusCompleted, db.StatusFailed:
		return nil
	}
	return &InvalidError{fmt.Sprintf("status must be one of started, completed, failed (got %q)", s)}
}

// Validate checks the fields a caller controls.
func Validate(a db.Activity) error {
	if err := CheckType(a.Type); err != nil {
		return err
	}
	if err := CheckStatus(a.Status); err != nil {
		return err
	}
	if a.Title == "" {
		return &InvalidError{"title is required"}
	}
	if len(a.Title) > 500 || len(a.Subtitle) > 1000 {
		return &InvalidError{"title is limited to 500 bytes and subtitle to 1000"}
	}
	return nil
}
