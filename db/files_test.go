package db

import (
	"context"
	"testing"
	"time"

	"dashboard/model"
)

func TestModelFilesSurviveRestart(t *testing.T) {
	s, path, _ := openTest(t, Options{})
	ctx := context.Background()
	mod := time.Unix(1_700_000_000, 123456789)
	for _, f := range []model.ModelFile{
		{Path: "vae/vae.safetensors", SHA256: "aa", Size: 10, ModTime: mod, PresetID: "A"},
		{Path: "vae/vae.safetensors", SHA256: "bb", Size: 11, ModTime: mod.Add(time.Second), PresetID: "B"}, // replaces A's
		{Path: "loras/x.safetensors", SHA256: "cc", Size: 12, ModTime: mod, PresetID: "C"},
	} {
		if err := s.RecordModelFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordModelFile(ctx, model.ModelFile{Path: "x"}); err == nil {
		t.Error("a file without sha256 was recorded")
	}
	s.Close()
	s2, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	files, err := s2.ModelFiles(ctx)
	if err != nil || len(files) != 2 {
		t.Fatalf("files = %+v, %v", files, err)
	}
	for _, f := range files {
		if f.Path == "vae/vae.safetensors" && (f.SHA256 != "bb" || f.Size != 11 || !f.ModTime.Equal(mod.Add(time.Second)) || f.PresetID != "B") {
			t.Errorf("vae = %+v", f)
		}
	}
}

// Corrupt files outlive a restart; a repair or a passing verify forgets one,
// and an uninstall forgets everything about its path.
func TestCorruptFilesSurviveRestart(t *testing.T) {
	s, path, _ := openTest(t, Options{})
	ctx := context.Background()
	mod := time.Unix(1_700_000_000, 987654321)
	found := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, f := range []model.CorruptFile{
		{Path: "loras/a.safetensors", Size: 10, ModTime: mod, Expected: "aa", Actual: "ff", FoundAt: found},
		{Path: "loras/a.safetensors", Size: 11, ModTime: mod.Add(time.Second), Expected: "aa", Actual: "ee", FoundAt: found}, // checked again
		{Path: "vae/b.safetensors", Size: 12, ModTime: mod, Expected: "bb", Actual: "dd", FoundAt: found},
		{Path: "vae/c.safetensors", Size: 13, ModTime: mod, Expected: "cc", Actual: "00", FoundAt: found},
	} {
		if err := s.RecordCorruptFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordCorruptFile(ctx, model.CorruptFile{Path: "x"}); err == nil {
		t.Error("a corrupt file without its expected sha256 was recorded")
	}
	if err := s.RecordModelFile(ctx, model.ModelFile{Path: "vae/c.safetensors", SHA256: "cc", Size: 13, ModTime: mod, PresetID: "C"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetCorruptFile(ctx, "vae/b.safetensors"); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetModelFile(ctx, "vae/c.safetensors"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	files, err := s2.CorruptFiles(ctx)
	if err != nil || len(files) != 1 {
		t.Fatalf("corrupt files = %+v, %v", files, err)
	}
	if f := files[0]; f.Path != "loras/a.safetensors" || f.Size != 11 || !f.ModTime.Equal(mod.Add(time.Second)) || f.Expected != "aa" || f.Actual != "ee" || !f.FoundAt.Equal(found) {
		t.Errorf("corrupt file = %+v", f)
	}
	if mf, err := s2.ModelFiles(ctx); err != nil || len(mf) != 0 {
		t.Errorf("model files after forgetting = %+v, %v", mf, err)
	}
}
