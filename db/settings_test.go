package db

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestSettings(t *testing.T) {
	clock := newClock(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	s, _, _ := openTest(t, Options{Now: clock.Now})
	ctx := context.Background()

	if v, ok, err := s.Setting(ctx, "theme"); err != nil || !ok || v != "dark" {
		t.Errorf("theme = %q, %v, %v", v, ok, err)
	}
	if v, ok, err := s.Setting(ctx, "hf_token"); err != nil || ok || v != "" {
		t.Errorf("absent key = %q, %v, %v", v, ok, err)
	}

	clock.Set(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	if err := s.SetSettings(ctx, map[string]string{"theme": "light", "hf_token": "hf_abc", "empty": ""}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"theme": "light", "hf_token": "hf_abc", "empty": "", "activity_retention_days": "30"}
	if got, err := s.Settings(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Settings = %v, %v; want %v", got, err, want)
	}
	if v, ok, _ := s.Setting(ctx, "empty"); !ok || v != "" {
		t.Errorf("empty value = %q, %v", v, ok)
	}
	if ts := queryString(t, s.cur.db, `SELECT quote(updated_at) FROM settings WHERE key = 'theme'`); ts != "'2026-11-28T09:00:00.000Z'" {
		t.Errorf("updated_at = %s", ts)
	}
	if ts := queryString(t, s.cur.db, `SELECT quote(updated_at) FROM settings WHERE key = 'activity_retention_days'`); ts != "'2026-11-27T10:00:00.000Z'" {
		t.Errorf("untouched updated_at = %s", ts)
	}

	if err := s.DeleteSetting(ctx, "hf_token"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Setting(ctx, "hf_token"); ok {
		t.Error("hf_token still set after delete")
	}
	if err := s.DeleteSetting(ctx, "hf_token"); err != nil {
		t.Errorf("deleting an absent key: %v", err)
	}
	if err := s.SetSettings(ctx, nil); err != nil {
		t.Errorf("empty SetSettings: %v", err)
	}
	if err := s.SetSettings(ctx, map[string]string{"": "x"}); err == nil {
		t.Error("empty key accepted")
	}
}

// SetSettings is one transaction: a failure part-way leaves nothing written.
func TestSetSettingsIsAtomic(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	// Make the database itself refuse one key, mid-transaction.
	if _, err := s.cur.db.Exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON settings
WHEN NEW.key = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END`); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Settings(ctx)
	// Keys are written in sorted order: "a_new" is written before "boom"
	// fails, "theme" (an update) would come after.
	err := s.SetSettings(ctx, map[string]string{"a_new": "1", "boom": "x", "theme": "light"})
	if err == nil {
		t.Fatal("SetSettings succeeded despite the trigger")
	}
	after, _ := s.Settings(ctx)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("settings changed by a failed SetSettings: %v → %v", before, after)
	}
}
