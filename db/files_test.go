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
