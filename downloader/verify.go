package downloader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"dashboard/model"
)

// A verify checksums the files of a preset that are in place against the
// SHA-256 they should have: the preset's, else the one the service hosting
// the file states (checksumSource). It runs through the download queue as a
// Download of kind "verify", with the same progress frames, cancel and
// history, and deletes nothing. A file that does not match is recorded as
// corrupt (model_files' neighbour corrupt_files), which makes it count as
// not installed until a verified copy replaces it: Install repairs it.

// checksumSource states the SHA-256 the service hosting a preset file gives
// for it. ok is false when the file is not that service's, so the next
// source is asked; sum is "" when the service states no SHA-256 for it.
type checksumSource interface {
	statedSHA256(ctx context.Context, f PresetFile) (sum string, ok bool, err error)
}

// hfChecksums asks HuggingFace: a HEAD on the file's /resolve/ URL answers
// with X-Linked-Etag, the SHA-256 of an LFS file, on the redirect to the
// CDN. The redirect is not followed (the CDN knows nothing more, and must
// never see the token); redirects within the HuggingFace host are.
type hfChecksums struct{ m *Manager }

func (h hfChecksums) statedSHA256(ctx context.Context, f PresetFile) (string, bool, error) {
	m := h.m
	cur, svc, err := m.services.rewrite(f.URL)
	if err != nil || svc != m.hf {
		return "", false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ref := fileRef{path: f.Path, url: f.URL}
	meta := fileMeta{linkedSize: -1}
	for range 10 {
		req, err := newRequest(ctx, http.MethodHead, cur)
		if err != nil {
			return "", true, err
		}
		// cur is on HuggingFace's host: the loop never leaves it.
		m.hf.authorize(ctx, req)
		resp, err := m.headCli.Do(req)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
				return "", true, cause
			}
			return "", true, transient("%s: could not ask HuggingFace for its checksum (%v)", f.Path, unwrapURLError(err))
		}
		resp.Body.Close()
		if next, ok := redirectTarget(resp, cur); ok {
			meta.addHop(resp.Header)
			if meta.linkedEtag != "" || !m.hf.owns(next) {
				// A git SHA-1 (a small file outside LFS) is no SHA-256:
				// sha256() gives "" and the file is unverifiable.
				return meta.sha256(), true, nil
			}
			cur = next
			continue
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			meta.addFinal(resp.Header)
			return meta.sha256(), true, nil
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			m.log.Warn("verify: file not on huggingface", "path", f.Path, "url", shownURL(f.URL), "status", resp.StatusCode)
			return "", true, nil // nothing to compare with: unverifiable
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return "", true, m.hf.refused(resp.StatusCode, ref) // HuggingFace's own word
		default:
			return "", true, statusError(resp, ref)
		}
	}
	return "", true, transient("%s: HuggingFace redirected more than 10 times", f.Path)
}

// civitaiChecksums asks Civitai's API for the SHA-256 of the file a
// Civitai download URL selects (cached per version, as installs do).
type civitaiChecksums struct{ m *Manager }

func (c civitaiChecksums) statedSHA256(ctx context.Context, f PresetFile) (string, bool, error) {
	cf, ok, err := c.m.CivitaiFile(ctx, f.URL)
	if !ok {
		return "", false, nil
	}
	return cf.SHA256, true, err
}

// expectedSHA256 is what f must hash to: the preset's sha256, else what the
// first service that hosts it states; "" when nobody says.
func (m *Manager) expectedSHA256(ctx context.Context, f PresetFile) (string, error) {
	if f.sha256 != "" {
		return f.sha256, nil
	}
	for _, src := range m.checksums {
		sum, ok, err := src.statedSHA256(ctx, f)
		if ok {
			return strings.ToLower(sum), err
		}
	}
	return "", nil
}

// Verify queues a verify of preset id's files that are in place. It answers
// not_found for an unknown preset, not_installed when none of its files is
// in place, already_queued while a verify of it is queued or running, and
// busy while it is being installed.
func (m *Manager) Verify(ctx context.Context, id string) (Download, error) {
	m.mu.Lock()
	p, ok := m.presets[id]
	if !ok {
		m.mu.Unlock()
		return Download{}, model.Errorf(model.CodeNotFound, "There is no preset %q.", id)
	}
	job := m.jobLocked(id)
	if job != nil && job.kind == model.KindInstall {
		m.mu.Unlock()
		return Download{}, model.Errorf(model.CodeBusy, "%s is being installed; verify it once the download has ended.", p.what())
	}
	if job != nil || m.reserved[id] {
		m.mu.Unlock()
		return Download{}, model.Errorf(model.CodeAlreadyQueued, "%s is already being verified or installed.", p.what())
	}
	m.reserved[id] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.reserved, id)
		m.mu.Unlock()
	}()

	files, size := m.inPlace(p)
	if len(files) == 0 {
		return Download{}, model.Errorf(model.CodeNotInstalled, "%s has no files in place to verify; install it first.", p.what())
	}
	rec, err := m.cfg.History.StartVerify(ctx, id, len(files))
	if err != nil {
		return Download{}, fmt.Errorf("record verify of %q: %w", id, err)
	}
	d := m.newDownload(rec, model.KindVerify, p, len(files), 0, size)
	m.log.Info("verify queued", "download_id", d.id, "preset_id", id, "files", len(files))
	snap := m.add(d)
	m.notify()
	return snap, nil
}

// inPlace lists p's files that are at their paths and are p's (installed,
// or corrupt), and their size in all.
func (m *Manager) inPlace(p Preset) ([]PresetFile, int64) {
	var out []PresetFile
	var size int64
	for _, f := range p.Files {
		if ok, corrupt := m.fileState(f); ok || corrupt {
			out = append(out, f)
			if st, err := os.Stat(m.finalPath(f)); err == nil {
				size += st.Size()
			}
		}
	}
	return out, size
}

// verified is what a verify found.
type verified struct {
	ok, corrupt, unverifiable []string
}

// runVerify checks the files of a verify and records the outcome, as
// runDownload does for an install. ctx is the verify's own.
func (m *Manager) runVerify(ctx context.Context, d *download) {
	began := time.Now()
	m.record(ctx, d.preset, model.ActivityStarted, "Verifying "+d.preset.Name, map[string]any{
		"preset_id": d.preset.ID, "download_id": d.id, "kind": model.KindVerify, "files": d.filesTotal,
	})
	m.log.Info("verify started", "download_id", d.id, "preset_id", d.preset.ID)

	stopProgress := m.startProgress(d)
	res, err := m.verifyFiles(ctx, d)
	stopProgress()

	cause := context.Cause(ctx)
	status, derr := model.DownloadCompleted, (*model.Error)(nil)
	switch {
	case err == nil && len(res.corrupt) > 0:
		status, derr = model.DownloadFailed, mismatchError(res.corrupt)
	case err == nil:
	case errors.Is(cause, errCancelled):
		status = model.DownloadCancelled
	case ctx.Err() != nil:
		status = model.DownloadFailed
		derr = &model.Error{Code: model.CodeInterrupted, Message: model.InterruptedMessage}
	default:
		status, derr = model.DownloadFailed, toDownloadError(err)
	}

	m.mu.Lock()
	now := m.cfg.Now().UTC()
	d.status, d.err, d.completedAt, d.currentFile = status, derr, &now, ""
	d.cancel(nil)
	snap := d.snapshotLocked()
	m.mu.Unlock()

	m.finishHistory(d, snap)
	m.publishFinal(snap)
	details := map[string]any{
		"preset_id":        d.preset.ID,
		"download_id":      d.id,
		"kind":             model.KindVerify,
		"files":            snap.FilesCompleted,
		"files_total":      snap.FilesTotal,
		"bytes":            snap.BytesDone,
		"verified":         nonNil(res.ok),
		"corrupt":          nonNil(res.corrupt),
		"unverifiable":     nonNil(res.unverifiable),
		"duration_seconds": int64(time.Since(began).Round(time.Second) / time.Second),
	}
	switch status {
	case model.DownloadCompleted:
		m.record(ctx, d.preset, model.ActivityCompleted, "Verified "+d.preset.Name, details)
		m.log.Info("verify completed", "download_id", d.id, "preset_id", d.preset.ID, "verified", len(res.ok), "unverifiable", len(res.unverifiable))
	case model.DownloadCancelled:
		details["error"] = model.Error{Code: model.CodeCancelled, Message: "Cancelled by the user."}
		m.record(ctx, d.preset, model.ActivityFailed, "Cancelled verify of "+d.preset.Name, details)
		m.log.Info("verify cancelled", "download_id", d.id, "preset_id", d.preset.ID)
	default:
		details["error"] = derr
		m.record(ctx, d.preset, model.ActivityFailed, "Verify failed: "+d.preset.Name, details)
		m.log.Warn("verify failed", "download_id", d.id, "preset_id", d.preset.ID, "code", derr.Code, "err", derr.Message)
	}
	m.publishPresets() // files found corrupt (or sound again) change the presets' state
	close(d.done)
}

// mismatchError names the files that did not match.
func mismatchError(paths []string) *model.Error {
	if len(paths) == 1 {
		return model.Errorf(model.CodeChecksum,
			"The file %s does not match its checksum; it is marked corrupt, and installing the preset again (Repair) replaces it.", paths[0])
	}
	return model.Errorf(model.CodeChecksum,
		"%d files do not match their checksums: %s; they are marked corrupt, and installing the preset again (Repair) replaces them.",
		len(paths), strings.Join(paths, ", "))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// verifyFiles asks for every file's SHA-256 first (a token or network
// problem shows before any hashing), then hashes those that have one.
func (m *Manager) verifyFiles(ctx context.Context, d *download) (verified, error) {
	var res verified
	root, err := os.OpenRoot(m.cfg.ModelsDir)
	if err != nil {
		return res, diskError("open the models folder", err)
	}
	defer root.Close()

	files, _ := m.inPlace(d.preset)
	m.mu.Lock()
	d.filesTotal, d.filesCompleted = len(files), 0
	m.mu.Unlock()
	step := func(f PresetFile, list *[]string, found *[]string) {
		m.mu.Lock()
		defer m.mu.Unlock()
		d.filesCompleted++
		if list != nil {
			*list = append(*list, f.Path)
		}
		if found != nil {
			*found = append(*found, f.Path)
		}
	}

	type check struct {
		f   PresetFile
		sum string
	}
	var checks []check
	var total int64
	for _, f := range files {
		m.setCurrent(d, f.Path)
		sum, err := m.expectedSHA256(ctx, f)
		if err != nil {
			return res, err
		}
		st, serr := root.Stat(f.Path)
		switch {
		case serr != nil: // removed meanwhile: nothing to check
			step(f, nil, nil)
		case sum == "":
			m.log.Info("verify: no known checksum", "path", f.Path, "preset_id", d.preset.ID)
			step(f, &res.unverifiable, &d.unverifiable)
		default:
			checks = append(checks, check{f, sum})
			total += st.Size()
		}
	}
	d.bytesTotal.Store(total)

	for _, c := range checks {
		m.setCurrent(d, c.f.Path)
		got, st, err := m.hashFile(ctx, root, d, c.f.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			step(c.f, nil, nil)
		case err != nil:
			return res, err
		case got == c.sum:
			m.clearCorrupt(ctx, c.f.Path)
			step(c.f, &res.ok, nil)
		default:
			m.log.Warn("verify: checksum mismatch", "path", c.f.Path, "preset_id", d.preset.ID, "expected", c.sum, "got", got)
			m.markCorrupt(ctx, model.CorruptFile{
				Path: c.f.Path, Size: st.Size(), ModTime: st.ModTime(),
				Expected: c.sum, Actual: got, FoundAt: m.cfg.Now().UTC(),
			})
			step(c.f, &res.corrupt, &d.corrupt)
		}
	}
	return res, nil
}

func (m *Manager) setCurrent(d *download, path string) {
	m.mu.Lock()
	d.currentFile = path
	m.mu.Unlock()
}

// hashFile hashes the file at rel, a buffer at a time with a look at ctx
// between buffers, so a cancel ends it at once even in a large file. It
// holds the path's lock meanwhile: no download replaces the file under it.
func (m *Manager) hashFile(ctx context.Context, root *os.Root, d *download, rel string) (string, os.FileInfo, error) {
	unlock, err := m.paths.lock(ctx, rel)
	if err != nil {
		return "", nil, context.Cause(ctx)
	}
	defer unlock()
	f, err := root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, err
	}
	if err != nil {
		return "", nil, rootError(root, "open "+rel, rel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", nil, diskError("read "+rel, err)
	}
	bp := m.bufs.Get().(*[]byte)
	defer m.bufs.Put(bp)
	buf := *bp
	h := sha256.New()
	for {
		if ctx.Err() != nil {
			return "", nil, context.Cause(ctx)
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		d.bytesDone.Add(int64(n))
		d.fetched.Add(int64(n))
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), st, nil
		}
		if err != nil {
			return "", nil, diskError("read "+rel, err)
		}
	}
}

// corruptAt says whether the file at path, as st describes it, is one a
// verify found corrupt (and nothing has replaced since).
func (m *Manager) corruptAt(path string, st os.FileInfo) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.corrupt[path]
	return ok && unchanged(rec.Size, rec.ModTime, st)
}

// corruptOf says whether the file at f's path is f's own, found corrupt
// against f's sha256: installing f over it is a repair, not a conflict.
func (m *Manager) corruptOf(f PresetFile, st os.FileInfo) bool {
	if !m.corruptAt(f.Path, st) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.corrupt[f.Path].Expected == f.sha256
}

// corruptExpected is the SHA-256 the file at path should have had when a
// verify found it corrupt; "" when it was not.
func (m *Manager) corruptExpected(path string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.corrupt[path].Expected
}

// markCorrupt remembers a file a verify found corrupt, across restarts
// when there is a ledger.
func (m *Manager) markCorrupt(ctx context.Context, f model.CorruptFile) {
	m.mu.Lock()
	m.corrupt[f.Path] = f
	m.mu.Unlock()
	if m.cfg.Files == nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := m.cfg.Files.RecordCorruptFile(wctx, f); err != nil {
		m.log.Error("record corrupt file failed; it shows as corrupt until the dashboard restarts", "path", f.Path, "err", err)
	}
}

// clearCorrupt forgets that the file at path was corrupt.
func (m *Manager) clearCorrupt(ctx context.Context, path string) {
	m.mu.Lock()
	_, was := m.corrupt[path]
	delete(m.corrupt, path)
	m.mu.Unlock()
	if !was || m.cfg.Files == nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := m.cfg.Files.ForgetCorruptFile(wctx, path); err != nil {
		m.log.Error("forget corrupt file failed", "path", path, "err", err)
	}
}

// repaired notes that a verified file landed at path, where before (nil
// when there was none) was in place: the corrupt mark goes, and the
// overview hears the old file leave before landed tells it of the new one.
func (m *Manager) repaired(ctx context.Context, path string, before os.FileInfo) {
	m.clearCorrupt(ctx, path)
	if before != nil && m.cfg.ModelFiles != nil {
		m.cfg.ModelFiles.Removed(path, before.Size())
	}
}
