package downloader

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"dashboard/model"
)

// This file holds what is Civitai's own: its public hosts, how its
// refusals read, and what its API says of a file. The mechanism it shares
// with HuggingFace is in service.go.
//
// A Civitai file is https://civitai.com/api/download/models/{versionId},
// optionally with type, format, fp and size in the query to pick one of the
// version's files. Civitai answers it with a redirect (307) to a signed link
// on its storage host (Cloudflare R2, 24 hours), which honours Range and
// answers 400 to any Authorization header: the token goes to Civitai only.
// Civitai does not put the file's checksum on its answers; its API does:
// GET /api/v1/model-versions/{versionId} lists the version's files with
// their SHA-256 (upper case) and size in KB.

// civitaiVersionTTL is how long what the API said of a version is used
// before it is asked again.
const civitaiVersionTTL = time.Hour

// isCivitaiHost says whether host is one of Civitai's public names:
// civitai.com, and civitai.green and civitai.red, the same site with other
// content settings.
func isCivitaiHost(host string) bool {
	host = strings.TrimPrefix(strings.ToLower(host), "www.")
	return host == "civitai.com" || host == "civitai.green" || host == "civitai.red"
}

// civitai is the Civitai service at ep.
func civitai(ep endpoint, token func(context.Context) string) *service {
	return &service{
		name: "Civitai", ep: ep, public: isCivitaiHost, token: token,
		// Civitai documents its download URL for GET only.
		askMethod:     http.MethodGet,
		tokenRequired: model.CodeCivitaiTokenRequired,
		refused: func(status int, f fileRef) *fetchError {
			if status == http.StatusUnauthorized {
				return permanent(model.CodeCivitaiTokenRequired,
					"%s: Civitai asked for a login (401): its creator lets only signed-in users download it, or the token in use was revoked; set a valid Civitai token in Settings and retry", f.path)
			}
			return permanent(model.CodeCivitaiAccessDenied,
				"%s: Civitai refused the download (403): the model may be in early access, or its creator does not allow it for your account; see its page on Civitai", f.path)
		},
	}
}

// civitaiVersionID is the model version a Civitai download URL (already
// pointed at the endpoint) fetches, 0 when u is not one.
func (s *service) civitaiVersionID(u *url.URL) int64 {
	rest, ok := strings.CutPrefix(u.Path, s.ep.prefix+"/api/download/models/")
	if !ok {
		return 0
	}
	id, err := strconv.ParseInt(strings.TrimSuffix(rest, "/"), 10, 64)
	if err != nil || id <= 0 {
		return 0
	}
	return id
}

// CivitaiFile is what Civitai's API says of the file a download URL
// fetches.
type CivitaiFile struct {
	VersionID int64
	Name      string // the file's name on Civitai
	// SHA256 is lower-case hex, "" when Civitai gives none.
	SHA256 string
	// SizeBytes comes from Civitai's size in KB: close, not an exact byte count.
	SizeBytes int64
}

// civitaiVersion is the part of GET /api/v1/model-versions/{id} read here.
type civitaiVersion struct {
	Files []civitaiVersionFile `json:"files"`
}

type civitaiVersionFile struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	SizeKB   float64 `json:"sizeKB"`
	Primary  bool    `json:"primary"`
	Metadata struct {
		Format string `json:"format"`
		Size   string `json:"size"`
		FP     string `json:"fp"`
	} `json:"metadata"`
	Hashes struct {
		SHA256 string `json:"SHA256"`
	} `json:"hashes"`
}

// pick is the file a download URL's query selects: among the files whose
// type, metadata.format, metadata.fp and metadata.size match every one the
// query gives (case aside), the primary one, else the first; with no match
// (or no such query), the version's primary file. ok is false when there is
// none to name.
func (v civitaiVersion) pick(q url.Values) (civitaiVersionFile, bool) {
	wants := []struct {
		value string
		of    func(civitaiVersionFile) string
	}{
		{q.Get("type"), func(f civitaiVersionFile) string { return f.Type }},
		{q.Get("format"), func(f civitaiVersionFile) string { return f.Metadata.Format }},
		{q.Get("fp"), func(f civitaiVersionFile) string { return f.Metadata.FP }},
		{q.Get("size"), func(f civitaiVersionFile) string { return f.Metadata.Size }},
	}
	var matched []civitaiVersionFile
	for _, f := range v.Files {
		ok, asked := true, false
		for _, w := range wants {
			if w.value == "" {
				continue
			}
			asked = true
			ok = ok && strings.EqualFold(strings.TrimSpace(w.value), strings.TrimSpace(w.of(f)))
		}
		if asked && ok {
			matched = append(matched, f)
		}
	}
	for _, f := range matched {
		if f.Primary {
			return f, true
		}
	}
	if len(matched) > 0 {
		return matched[0], true
	}
	for _, f := range v.Files {
		if f.Primary {
			return f, true
		}
	}
	return civitaiVersionFile{}, false
}

// versionCache keeps what the API said of each version for a while, so an
// install, its retry and a verify ask once.
type versionCache struct {
	mu sync.Mutex
	m  map[int64]cachedVersion
}

type cachedVersion struct {
	v  civitaiVersion
	at time.Time
}

// CivitaiFile asks Civitai's API (or its answer of the last hour) what the
// file rawURL downloads is: its SHA-256 and size. ok is false when rawURL is
// not a Civitai download URL (https://civitai.com/api/download/models/{id});
// err says why Civitai could not tell (no answer, an unknown version, no
// file the query selects).
func (m *Manager) CivitaiFile(ctx context.Context, rawURL string) (f CivitaiFile, ok bool, err error) {
	u, svc, err := m.services.rewrite(rawURL)
	if err != nil || svc != m.civitai {
		return CivitaiFile{}, false, nil
	}
	id := svc.civitaiVersionID(u)
	if id == 0 {
		return CivitaiFile{}, false, nil
	}
	v, err := m.civitaiVersion(ctx, id)
	if err != nil {
		return CivitaiFile{}, true, err
	}
	vf, found := v.pick(u.Query())
	if !found {
		return CivitaiFile{}, true, fmt.Errorf("civitai model version %d lists no file %s selects", id, shownURL(rawURL))
	}
	f = CivitaiFile{VersionID: id, Name: vf.Name, SizeBytes: int64(math.Round(vf.SizeKB * 1024))}
	if sum := strings.ToLower(strings.TrimSpace(vf.Hashes.SHA256)); model.IsSHA256(sum) {
		f.SHA256 = sum
	}
	return f, true, nil
}

// civitaiVersion is what GET {endpoint}/api/v1/model-versions/{id} says,
// from the cache when it said so within the last hour. The request carries
// the Civitai token (it shows early-access versions the account has) and
// follows no redirect, so the token stays on Civitai's host.
func (m *Manager) civitaiVersion(ctx context.Context, id int64) (civitaiVersion, error) {
	now := m.cfg.Now()
	m.versions.mu.Lock()
	c, hit := m.versions.m[id]
	m.versions.mu.Unlock()
	if hit && now.Sub(c.at) < civitaiVersionTTL {
		return c.v, nil
	}
	ep := m.civitai.ep
	u := &url.URL{Scheme: ep.scheme, Host: ep.host, Path: fmt.Sprintf("%s/api/v1/model-versions/%d", ep.prefix, id)}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := newRequest(ctx, http.MethodGet, u)
	if err != nil {
		return civitaiVersion{}, err
	}
	req.Header.Set("Accept", "application/json")
	m.civitai.authorize(ctx, req)
	resp, err := m.headCli.Do(req)
	if err != nil {
		return civitaiVersion{}, fmt.Errorf("ask civitai about model version %d: %w", id, unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return civitaiVersion{}, model.Errorf(model.CodeCivitaiTokenRequired,
			"Civitai refused the Civitai token in use (401) when asked about model version %d; it may have been revoked. Set a valid Civitai token in Settings and retry.", id)
	case http.StatusForbidden:
		return civitaiVersion{}, model.Errorf(model.CodeCivitaiAccessDenied,
			"Civitai refused to describe model version %d (403): it may be in early access, or its creator does not allow it for your account.", id)
	default:
		return civitaiVersion{}, fmt.Errorf("civitai answered %s about model version %d", resp.Status, id)
	}
	var v civitaiVersion
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 8<<20)).Decode(&v); err != nil {
		return civitaiVersion{}, fmt.Errorf("read civitai's answer about model version %d: %w", id, err)
	}
	m.versions.mu.Lock()
	m.versions.m[id] = cachedVersion{v: v, at: now}
	m.versions.mu.Unlock()
	return v, nil
}

// withCivitai fills in, for p's Civitai files not yet in place, the SHA-256
// and size Civitai's API gives, where presets.yaml gives none (its own
// values win). It runs when a preset is installed, never when presets.yaml
// is read. An API that cannot answer is logged and changes nothing: the
// download itself then says what is wrong, or lands the file unverified.
func (m *Manager) withCivitai(ctx context.Context, p Preset) Preset {
	files := make([]PresetFile, len(p.Files))
	copy(files, p.Files)
	p.Files = files
	for i := range p.Files {
		f := &p.Files[i]
		if (f.sha256 == "" || f.SizeBytes == 0) && !m.installed(*f) {
			*f = m.withCivitaiFile(ctx, *f)
		}
	}
	return p
}

// withCivitaiFile is f with the checksum and size Civitai gives where f
// has none; f as it is when it is not a Civitai download.
func (m *Manager) withCivitaiFile(ctx context.Context, f PresetFile) PresetFile {
	cf, ok, err := m.CivitaiFile(ctx, f.URL)
	if !ok {
		return f
	}
	if err != nil {
		m.log.Warn("civitai file details unavailable", "path", f.Path, "url", shownURL(f.URL), "err", err)
		return f
	}
	if f.sha256 == "" {
		f.sha256 = cf.SHA256
	}
	if f.SizeBytes == 0 {
		f.SizeBytes = cf.SizeBytes
	}
	return f
}
