package downloader

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"dashboard/model"
)

// This file holds what is HuggingFace's own: its public host, how its
// refusals read, where a gated model's licence is accepted. The mechanism
// it shares with Civitai is in service.go. HuggingFace puts the file's
// SHA-256 (X-Linked-Etag) and size (X-Linked-Size) on the redirect from
// /resolve/ to its CDN (fileMeta reads them).

func isHFHost(host string) bool {
	host = strings.ToLower(host)
	return host == "huggingface.co" || host == "www.huggingface.co"
}

// huggingFace is the HuggingFace service at ep.
func huggingFace(ep endpoint, token func(context.Context) string) *service {
	return &service{
		name: "HuggingFace", ep: ep, public: isHFHost, token: token,
		askMethod:     http.MethodHead,
		tokenRequired: model.CodeHFTokenRequired,
		refused: func(status int, f fileRef) *fetchError {
			if status == http.StatusUnauthorized {
				return permanent(model.CodeHFTokenRequired,
					"%s: HuggingFace asked for a token (401): set a valid HuggingFace token in Settings and retry", f.path)
			}
			if page := modelPage(f.url); page != "" {
				return permanent(model.CodeHFAccessDenied,
					"%s: access denied (403): accept the model's licence at %s with the account of your token, then retry", f.path, page)
			}
			return permanent(model.CodeHFAccessDenied, "%s: HuggingFace refused access (403) to %s", f.path, shownURL(f.url))
		},
	}
}

// modelPage is the public HuggingFace page of the repository a URL is in,
// where a gated model's licence is accepted.
func modelPage(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !isHFHost(u.Hostname()) {
		return ""
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(segs) >= 3 && (segs[0] == "datasets" || segs[0] == "spaces") {
		return "https://huggingface.co/" + strings.Join(segs[:3], "/")
	}
	if len(segs) >= 2 {
		return "https://huggingface.co/" + segs[0] + "/" + segs[1]
	}
	return ""
}
