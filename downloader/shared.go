package downloader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"dashboard/model"
)

// Ledger remembers which file the dashboard put at each path of the models
// folder (model_files in the database). Two presets that write one path with
// different files need it to tell whose file is there.
type Ledger interface {
	ModelFiles(ctx context.Context) ([]model.ModelFile, error)
	RecordModelFile(ctx context.Context, f model.ModelFile) error
	// ForgetModelFile forgets everything recorded about path (its owner
	// and its corruption): the file was removed.
	ForgetModelFile(ctx context.Context, path string) error
	// CorruptFiles, RecordCorruptFile and ForgetCorruptFile keep the
	// files a verify found corrupt, so a restart still knows them.
	CorruptFiles(ctx context.Context) ([]model.CorruptFile, error)
	RecordCorruptFile(ctx context.Context, f model.CorruptFile) error
	ForgetCorruptFile(ctx context.Context, path string) error
}

// sharer is one preset writing a path that another preset writes too.
type sharer struct {
	presetID string
	sha256   string // "" when the preset gives none
	url      string
}

// sharedPaths finds the paths more than one preset writes. A path written
// with two different sha256 values is a conflict: the presets want different
// files there, and conflicts maps it to everyone who writes it. A path whose
// writers cannot be told apart (different URLs, no sha256 on at least one
// side) stays one file, as the pods' own presets.yaml expects of the same
// model mirrored in two repositories, with a warning. Warnings are sorted
// by path.
func sharedPaths(presets map[string]Preset) (conflicts map[string][]sharer, warnings []string) {
	byPath := map[string][]sharer{}
	for id, p := range presets {
		for _, f := range p.Files {
			byPath[f.Path] = append(byPath[f.Path], sharer{presetID: id, sha256: f.sha256, url: f.URL})
		}
	}
	paths := make([]string, 0, len(byPath))
	for path, ss := range byPath {
		if len(ss) > 1 {
			paths = append(paths, path)
		}
	}
	slices.Sort(paths)
	conflicts = map[string][]sharer{}
	for _, path := range paths {
		ss := byPath[path]
		slices.SortFunc(ss, func(a, b sharer) int { return strings.Compare(a.presetID, b.presetID) })
		sums, urls, unsummed := map[string][]string{}, map[string]bool{}, false
		for _, s := range ss {
			urls[s.url] = true
			if s.sha256 == "" {
				unsummed = true
			} else {
				sums[s.sha256] = append(sums[s.sha256], s.presetID)
			}
		}
		switch {
		case len(sums) > 1:
			conflicts[path] = ss
			var groups []string
			for sum, ids := range sums {
				groups = append(groups, fmt.Sprintf("%s (sha256 %s…)", quoteIDs(ids), sum[:12]))
			}
			slices.Sort(groups)
			warnings = append(warnings, fmt.Sprintf(
				"%s is written by %s with different files: only one of them can be installed at a time (installing another answers path_conflict); give them different paths if both are needed.",
				path, strings.Join(groups, " and ")))
		case unsummed && len(urls) > 1:
			warnings = append(warnings, fmt.Sprintf(
				"%s is written by %s from different URLs and not every one gives a sha256, so they are taken as one file: installing one makes them all installed. Add sha256 to each to tell them apart.",
				path, quoteIDs(ids(ss))))
		}
	}
	return conflicts, warnings
}

func ids(ss []sharer) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.presetID
	}
	return out
}

// quoteIDs names presets for a sentence: "A", "A and B", "A, B and C".
func quoteIDs(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	if len(q) == 1 {
		return "preset " + q[0]
	}
	return "presets " + strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// owned reports whether the file at f's path is f's own, for a path that
// presets write with different files: it must be the file recorded there,
// with f's sha256, and unchanged since (size and modification time).
func (m *Manager) owned(f PresetFile, st os.FileInfo) bool {
	rec, ok := m.ownerOf(f.Path, st)
	return ok && rec.SHA256 == f.sha256
}

// ownerOf is the record of the file at path, when the file st describes
// is still the one recorded.
func (m *Manager) ownerOf(path string, st os.FileInfo) (model.ModelFile, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.owners[path]
	return rec, ok && unchanged(rec.Size, rec.ModTime, st)
}

// unchanged says whether st still describes a file recorded with this size
// and modification time: nothing has replaced or rewritten it since.
func unchanged(size int64, modTime time.Time, st os.FileInfo) bool {
	return size == st.Size() && modTime.Equal(st.ModTime())
}

// conflicted reports whether presets write path with different files.
func (m *Manager) conflicted(path string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.conflicts[path]
	return ok
}

// conflictingActiveLocked names a queued or running preset that writes a
// different file to one of p's paths, and that path; the caller holds m.mu.
func (m *Manager) conflictingActiveLocked(p Preset) (other, path string) {
	active := m.activeLocked()
	for _, f := range p.Files {
		for _, s := range m.conflicts[f.Path] {
			if s.presetID == p.ID || f.sha256 == "" || s.sha256 == "" || s.sha256 == f.sha256 {
				continue
			}
			if active[s.presetID] != "" || m.reserved[s.presetID] {
				return s.presetID, f.Path
			}
		}
	}
	return "", ""
}

// conflictInPlace refuses to install p over a file another preset put at a
// path they share with different files. missing are p's files not in place.
func (m *Manager) conflictInPlace(p Preset, missing []PresetFile) error {
	for _, f := range missing {
		if f.sha256 == "" || !m.conflicted(f.Path) {
			continue
		}
		st, err := os.Stat(m.finalPath(f))
		if err != nil {
			continue // nothing in the way
		}
		if m.corruptOf(f, st) {
			continue // p's own file, corrupt: installing repairs it
		}
		rec, known := m.ownerOf(f.Path, st)
		m.mu.Lock()
		var theirs, others []string
		for _, s := range m.conflicts[f.Path] {
			if s.presetID == p.ID || s.sha256 == f.sha256 {
				continue
			}
			if s.sha256 != "" {
				others = append(others, s.presetID)
				if known && s.sha256 == rec.SHA256 {
					theirs = append(theirs, s.presetID)
				}
			}
		}
		m.mu.Unlock()
		if len(theirs) > 0 {
			return model.Errorf(model.CodePathConflict,
				"Preset %q cannot be installed: %s holds the file of %s, which has another sha256. Give the presets different paths in presets.yaml, or remove that file first.",
				p.ID, f.Path, quoteIDs(theirs))
		}
		if !m.hashedUnknown(f.Path, st) {
			m.askIdentify()
			return model.Errorf(model.CodePathConflict,
				"Preset %q cannot be installed yet: %s already holds a file the dashboard has not identified (it may be that of %s, which writes another file there). It is being checked against each preset's sha256 now; if it is %q's, the preset shows as installed when that is done.",
				p.ID, f.Path, quoteIDs(others), p.ID)
		}
		return model.Errorf(model.CodePathConflict,
			"Preset %q cannot be installed: %s already holds a file that is neither %q's nor that of %s, which write other files there (its sha256 matches none of them). Give the presets different paths in presets.yaml, or remove that file first.",
			p.ID, f.Path, p.ID, quoteIDs(others))
	}
	return nil
}

// recordFiles remembers the files of p now in place on paths p shares with
// different files. verified says the download that just completed checked
// each of them against its sha256; otherwise (a download that failed or was
// cancelled after some files landed) a file is hashed first, and recorded
// only when it is p's.
func (m *Manager) recordFiles(ctx context.Context, p Preset, verified bool) {
	for _, f := range p.Files {
		if f.sha256 == "" || !m.conflicted(f.Path) {
			continue
		}
		st, err := os.Stat(m.finalPath(f))
		if err != nil || !st.Mode().IsRegular() || m.owned(f, st) {
			continue
		}
		if !verified {
			sum, err := fileSHA256(ctx, m.finalPath(f))
			if err != nil || sum != f.sha256 {
				continue
			}
		}
		m.recordOwner(ctx, model.ModelFile{Path: f.Path, SHA256: f.sha256, Size: st.Size(), ModTime: st.ModTime(), PresetID: p.ID})
	}
}

// recordOwner remembers that the file at rec.Path is rec.PresetID's.
func (m *Manager) recordOwner(ctx context.Context, rec model.ModelFile) {
	m.mu.Lock()
	m.owners[rec.Path] = rec
	delete(m.unknown, rec.Path)
	m.mu.Unlock()
	if m.cfg.Files == nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := m.cfg.Files.RecordModelFile(wctx, rec); err != nil {
		m.log.Error("record model file failed", "path", rec.Path, "preset_id", rec.PresetID, "err", err)
	}
}

// askIdentify asks identifyLoop to look at the shared paths again.
func (m *Manager) askIdentify() {
	select {
	case m.identify <- struct{}{}:
	default:
	}
}

// hashedUnknown reports whether the file st at path was hashed already and
// matched no preset that writes path.
func (m *Manager) hashedUnknown(path string, st os.FileInfo) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.unknown[path]
	return ok && unchanged(u.size, u.modTime, st)
}

// identifyLoop identifies the files on shared paths, when the downloader
// starts and whenever asked, until ctx ends.
func (m *Manager) identifyLoop(ctx context.Context) {
	m.askIdentify()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.identify:
		}
		if m.identifyShared(ctx) {
			m.publishPresets()
		}
	}
}

// identifyShared hashes, once, each file on a path presets write with
// different files that no record names: one put there before the path
// became shared (installed while its preset was the only one to write it),
// or by hand. The file is recorded as the preset's whose sha256 it has, so
// that preset shows installed instead of being stranded; a file that
// matches nobody stays unknown and is not hashed again while unchanged. A
// path a download or verify holds is skipped (that one records the file
// itself). It reports whether a file was identified.
func (m *Manager) identifyShared(ctx context.Context) bool {
	m.mu.Lock()
	paths := make([]string, 0, len(m.conflicts))
	for path := range m.conflicts {
		paths = append(paths, path)
	}
	m.mu.Unlock()
	slices.Sort(paths)
	found := false
	for _, path := range paths {
		if ctx.Err() != nil {
			return found
		}
		full := m.finalPath(PresetFile{Path: path})
		st, err := os.Stat(full)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if _, known := m.ownerOf(path, st); known || m.hashedUnknown(path, st) {
			continue
		}
		unlock, ok := m.paths.tryLock(path)
		if !ok {
			continue
		}
		began := time.Now()
		sum, err := fileSHA256(ctx, full)
		unlock()
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("identify shared file failed", "path", path, "err", err)
			}
			continue
		}
		m.mu.Lock()
		sharers := m.conflicts[path]
		m.mu.Unlock()
		owner := ""
		for _, s := range sharers {
			if s.sha256 == sum {
				owner = s.presetID
				break
			}
		}
		if owner == "" {
			m.log.Info("shared file matches no preset", "path", path, "sha256", sum)
			m.mu.Lock()
			m.unknown[path] = fileStamp{exists: true, modTime: st.ModTime(), size: st.Size()}
			m.mu.Unlock()
			continue
		}
		m.log.Info("shared file identified", "path", path, "preset_id", owner, "hash_seconds", time.Since(began).Seconds())
		m.recordOwner(ctx, model.ModelFile{Path: path, SHA256: sum, Size: st.Size(), ModTime: st.ModTime(), PresetID: owner})
		found = true
	}
	return found
}

// loadOwners reads which files the dashboard put in place, and which of
// them a verify found corrupt.
func (m *Manager) loadOwners(ctx context.Context) {
	if m.cfg.Files == nil {
		return
	}
	files, err := m.cfg.Files.ModelFiles(ctx)
	if err != nil {
		m.log.Error("read model files failed; shared paths show as not installed until installed again", "err", err)
	}
	corrupt, cerr := m.cfg.Files.CorruptFiles(ctx)
	if cerr != nil {
		m.log.Error("read corrupt files failed; files a verify found corrupt show as installed until verified again", "err", cerr)
	}
	m.mu.Lock()
	for _, f := range files {
		m.owners[f.Path] = f
	}
	for _, f := range corrupt {
		m.corrupt[f.Path] = f
	}
	m.mu.Unlock()
}

// fileSHA256 hashes a file, stopping when ctx ends.
func fileSHA256(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}
