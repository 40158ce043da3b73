package downloader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"dashboard/model"
)

// Uninstalled is the answer to an uninstall: the files removed, the files
// left because other presets have them installed, and the space that came
// back. Failed lists files that could not be removed (and why); it is
// empty unless the models folder refused.
type Uninstalled struct {
	Deleted    []string     `json:"deleted"`
	Kept       []KeptFile   `json:"kept"`
	FreedBytes int64        `json:"freed_bytes"`
	Failed     []FailedFile `json:"failed"`
}

// KeptFile is a file of the preset left in place because other presets
// have it installed too.
type KeptFile struct {
	Path   string   `json:"path"`
	UsedBy []string `json:"used_by"` // preset ids, sorted
}

// FailedFile is a file an uninstall could not remove.
type FailedFile struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Uninstall removes the files of preset id that no other preset has
// installed, and what its downloads left behind (.part files and their
// state). A file another preset has installed stays and is named with
// them; a file that is not this preset's (another preset's different file
// on a path they share, or one the dashboard cannot tell is this preset's)
// is left alone. With dryRun nothing is removed: the answer says what
// would be. Everything is removed through an os.Root of the models folder.
//
// It answers not_found for an unknown preset and busy while the preset is
// queued, downloading or being verified, or another download is writing
// one of its paths. A preset with nothing on disk answers empty lists and
// writes no activity.
func (m *Manager) Uninstall(ctx context.Context, id string, dryRun bool) (Uninstalled, error) {
	m.mu.Lock()
	p, ok := m.presets[id]
	if !ok {
		m.mu.Unlock()
		return Uninstalled{}, model.Errorf(model.CodeNotFound, "There is no preset %q.", id)
	}
	if job := m.jobLocked(id); job != nil || m.reserved[id] {
		m.mu.Unlock()
		doing := "being installed or verified"
		switch {
		case job != nil && job.kind == model.KindVerify:
			doing = "being verified"
		case job != nil:
			doing = "being installed"
		}
		return Uninstalled{}, model.Errorf(model.CodeBusy,
			"%s is %s; wait for that to end (or cancel it), then remove it.", p.what(), doing)
	}
	// No install or verify of it may be queued until this is done.
	m.reserved[id] = true
	others := make([]Preset, 0, len(m.presets))
	for oid, o := range m.presets {
		if oid != id {
			others = append(others, o)
		}
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.reserved, id)
		m.mu.Unlock()
	}()
	slices.SortFunc(others, func(a, b Preset) int { return strings.Compare(a.ID, b.ID) })

	// Holding every path's lock keeps downloads and verifies of other
	// presets off them while their files go; one already at work on a
	// path makes the preset busy.
	for _, f := range p.Files {
		unlock, ok := m.paths.tryLock(f.Path)
		if !ok {
			return Uninstalled{}, model.Errorf(model.CodeBusy,
				"%s cannot be removed now: its file %s is being downloaded or verified%s. Wait for that to end (or cancel it), then remove it.",
				p.what(), f.Path, m.whoHas(f.Path))
		}
		defer unlock()
	}

	res := Uninstalled{Deleted: []string{}, Kept: []KeptFile{}, Failed: []FailedFile{}}
	root, err := os.OpenRoot(m.cfg.ModelsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil // no models folder: nothing is installed
	}
	if err != nil {
		return Uninstalled{}, diskError("open the models folder", err).err
	}
	defer root.Close()

	type victim struct {
		path string
		size int64
		link bool // a symbolic link: removed, but the overview never counted it
	}
	var files, parts []victim
	for _, f := range p.Files {
		if fi, err := root.Stat(f.Path + partSuffix); err == nil && fi.Mode().IsRegular() {
			parts = append(parts, victim{path: f.Path, size: allocatedBytes(fi)})
		}
		st, err := root.Lstat(f.Path)
		if err != nil {
			continue
		}
		if ok, corrupt := m.fileState(f); !ok && !corrupt {
			continue // not this preset's file (or none)
		}
		if users := m.usersOf(root, f.Path, st, others); len(users) > 0 {
			res.Kept = append(res.Kept, KeptFile{Path: f.Path, UsedBy: users})
			continue
		}
		// A symbolic link (to a file elsewhere in the models folder) is
		// removed, not what it points to: that frees nothing.
		link := !st.Mode().IsRegular()
		size := st.Size()
		if link {
			size = 0
		}
		files = append(files, victim{f.Path, size, link})
	}
	if dryRun {
		for _, v := range files {
			res.Deleted = append(res.Deleted, v.path)
			res.FreedBytes += v.size
		}
		for _, v := range parts {
			res.FreedBytes += v.size
		}
		return res, nil
	}
	if len(files) == 0 && len(parts) == 0 && len(res.Kept) == 0 {
		return res, nil // nothing of it on disk
	}

	for _, v := range files {
		if err := root.Remove(v.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			msg := rootError(root, "remove "+v.path, v.path, err).Error()
			m.log.Warn("uninstall: remove failed", "preset_id", id, "path", v.path, "err", err)
			res.Failed = append(res.Failed, FailedFile{Path: v.path, Message: msg})
			continue
		}
		res.Deleted = append(res.Deleted, v.path)
		res.FreedBytes += v.size
		m.forgetFile(ctx, v.path)
		if m.cfg.ModelFiles != nil && !v.link {
			m.cfg.ModelFiles.Removed(v.path, v.size)
		}
	}
	for _, v := range parts {
		if err := removePart(root, v.path); err != nil {
			m.log.Warn("uninstall: remove partial file failed", "preset_id", id, "path", v.path+partSuffix, "err", err)
			res.Failed = append(res.Failed, FailedFile{Path: v.path + partSuffix, Message: err.Error()})
			continue
		}
		res.FreedBytes += v.size
	}

	m.log.Info("preset removed", "preset_id", id, "deleted", len(res.Deleted), "kept", len(res.Kept), "freed_bytes", res.FreedBytes, "failed", len(res.Failed))
	details := map[string]any{
		"preset_id":   id,
		"deleted":     res.Deleted,
		"kept":        res.Kept,
		"freed_bytes": res.FreedBytes,
	}
	if len(res.Failed) > 0 {
		details["failed"] = res.Failed
	}
	// Activity and the presets frame go out through the downloader's one
	// event queue, after any download frames already in it.
	m.record(ctx, p, model.ActivityCompleted, "Removed "+p.Name, details)
	m.publishPresets()
	return res, nil
}

// usersOf lists the presets, among others, that have the file at path
// installed (a corrupt file is nobody's). st is path's own entry (Lstat).
// Another preset uses the file when it lists the same path, or, when the
// entry is the file itself and not a link, a path that reaches the same
// file: ComfyUI's alias folders (clip → text_encoders, unet →
// diffusion_models) are often links inside the models folder.
func (m *Manager) usersOf(root *os.Root, path string, st fs.FileInfo, others []Preset) []string {
	var ids []string
	for _, o := range others {
		for _, f := range o.Files {
			same := f.Path == path
			if !same && st.Mode().IsRegular() {
				if ot, err := root.Stat(f.Path); err == nil {
					same = os.SameFile(st, ot)
				}
			}
			if same && m.installed(f) {
				ids = append(ids, o.ID)
				break
			}
		}
	}
	return ids
}

// whoHas names, for a sentence, the preset whose running download or
// verify holds path; "" when none is known (another process, say).
func (m *Manager) whoHas(path string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.downloads {
		if d.status != model.DownloadRunning {
			continue
		}
		for _, f := range d.preset.Files {
			if f.Path == path {
				if d.kind == model.KindVerify {
					return fmt.Sprintf(" (by a verify of %q)", d.preset.ID)
				}
				return fmt.Sprintf(" (by the download of %q)", d.preset.ID)
			}
		}
	}
	return ""
}

// forgetFile forgets what was recorded about a file that was removed: whose
// it was and whether it was corrupt.
func (m *Manager) forgetFile(ctx context.Context, path string) {
	m.mu.Lock()
	delete(m.owners, path)
	delete(m.corrupt, path)
	m.mu.Unlock()
	if m.cfg.Files == nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := m.cfg.Files.ForgetModelFile(wctx, path); err != nil {
		m.log.Error("forget model file failed", "path", path, "err", err)
	}
}
