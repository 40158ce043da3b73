package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ncruces/go-sqlite3"

	"dashboard/model"
)

// Backoff between retries of a write that found the database locked.
const (
	firstBackoff = 25 * time.Millisecond
	maxBackoff   = time.Second
)

// write runs fn in one BEGIN IMMEDIATE transaction and commits it, if this
// store may write: it is not read-only, the Guard agrees (this dashboard
// still holds the volume's writer lease) and the database file is still the
// one it opened. A full disk or quota is a model.CodeDiskFull error and
// marks the store's health until a write succeeds again.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.cur

	if s.opts.Guard != nil {
		if err := s.opts.Guard(ctx); err != nil {
			return err
		}
	}
	if c.readOnly {
		// The lease is ours but the pool is not reopened yet (Promote is
		// on its way), or there is no Guard to name the writer.
		return model.Errorf(model.CodeReadOnly, "This dashboard has the database open read-only for now; try again in a few seconds.")
	}
	if err := s.checkFile(c); err != nil {
		return err
	}
	err = s.retryWrite(ctx, c.db, fn)
	if s.isDiskFull(err) {
		s.health.diskFull(s.log, s.path, err)
		return model.DiskFullError(s.path, err)
	}
	if err == nil {
		s.health.wrote(s.log, s.path)
	}
	return err
}

// retryWrite runs fn in one transaction on db. When the lock is still held
// by someone else after busy_timeout, the whole transaction is retried with
// exponential backoff and jitter until the BusyRetry budget is spent. fn may
// therefore run more than once: it must only touch tx and variables it sets
// afresh.
func (s *Store) retryWrite(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	// The retry budget is wall time whatever Options.Now says: Now is for
	// the timestamps written, and a test clock must not stretch a wait.
	start := time.Now()
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := writeOnce(ctx, db, fn)
		if err == nil || !isBusy(err) {
			return err
		}
		left := s.busyRetry - time.Since(start)
		if left <= 0 {
			return fmt.Errorf("database is locked by another process; gave up after %s: %w", s.busyRetry, err)
		}
		wait := min(jitter(backoff), left)
		s.log.Debug("database locked; retrying write", "attempt", attempt, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for database lock: %w", ctx.Err())
		case <-t.C:
		}
		backoff = nextBackoff(backoff)
	}
}

func writeOnce(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// isBusy reports whether err means another connection holds a lock we need.
func isBusy(err error) bool {
	return errors.Is(err, sqlite3.BUSY) || errors.Is(err, sqlite3.LOCKED)
}

func nextBackoff(d time.Duration) time.Duration {
	return min(2*d, maxBackoff)
}

// jitter returns a duration in [d/2, d], so writers that collided once do
// not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(d-half+1)
}
