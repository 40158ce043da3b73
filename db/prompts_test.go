package db

import (
	"context"
	"dashboard/model"
	"testing"
	"time"
)

func TestPromptStatus(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := newClock(start)
	s, path, _ := openTest(t, Options{Now: clock.Now})
	ctx := context.Background()

	if st, ok, err := s.PromptStatus(ctx, "p1"); err != nil || ok || st != "" {
		t.Errorf("unknown prompt = %q, %v, %v", st, ok, err)
	}
	if err := s.SetPromptStatus(ctx, "p1", model.ActivityStarted); err != nil {
		t.Fatal(err)
	}
	clock.Set(start.Add(48 * time.Hour))
	if err := s.SetPromptStatus(ctx, "p1", model.ActivityCompleted); err != nil { // upsert
		t.Fatal(err)
	}
	if err := s.SetPromptStatus(ctx, "p2", model.ActivityStarted); err != nil {
		t.Fatal(err)
	}
	clock.Set(start)
	if err := s.SetPromptStatus(ctx, "p3", model.ActivityFailed); err != nil {
		t.Fatal(err)
	}
	if st, ok, _ := s.PromptStatus(ctx, "p1"); !ok || st != model.ActivityCompleted {
		t.Errorf("p1 = %q, %v", st, ok)
	}
	if ts := queryString(t, s.cur.db, `SELECT updated_at FROM comfyui_prompts WHERE prompt_id = 'p1'`); ts != "2026-11-29T10:00:00.000Z" {
		t.Errorf("p1 updated_at = %s", ts)
	}
	if err := s.SetPromptStatus(ctx, "", model.ActivityStarted); err == nil {
		t.Error("empty prompt id accepted")
	}

	// p3 is old; p1 was updated recently, so it stays even though it was
	// first seen at the same time as p3.
	n, err := s.DeletePromptsBefore(ctx, start.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeletePromptsBefore = %d, %v; want 1", n, err)
	}
	if _, ok, _ := s.PromptStatus(ctx, "p3"); ok {
		t.Error("p3 survived")
	}
	s.Close()

	// Remembered across restarts: that is the point of the table.
	s2, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if st, ok, _ := s2.PromptStatus(ctx, "p2"); !ok || st != model.ActivityStarted {
		t.Errorf("after reopen p2 = %q, %v", st, ok)
	}
}
