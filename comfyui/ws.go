package comfyui

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/coder/websocket"
)

// maxTextFrame is the most of a text frame the watcher reads; status frames
// are tiny, and anything bigger is skipped rather than refused.
const maxTextFrame = 64 << 10

// pollingTypes are the frames after which a poll is worth doing at once.
// ComfyUI sends "status" to every client when its queue changes; the
// execution_* frames reach the watcher only for prompts queued without a
// client id, which ComfyUI broadcasts. Per-node frames (progress, executing)
// would only cause needless polls.
var pollingTypes = map[string]bool{
	"status":                true,
	"execution_start":       true,
	"execution_success":     true,
	"execution_error":       true,
	"execution_interrupted": true,
}

// followWS keeps a WebSocket to ComfyUI open and signals trigger (without
// blocking) when a frame says the queue changed. It returns when ctx is done.
func (w *Watcher) followWS(ctx context.Context, trigger chan<- struct{}) {
	wsURL := w.base.JoinPath("ws")
	wsURL.RawQuery = url.Values{"clientId": {"dashboard-" + rand.Text()}}.Encode()
	wait := w.poll
	for {
		framed, err := w.readWS(ctx, wsURL.String(), trigger)
		if ctx.Err() != nil {
			return
		}
		if framed {
			// The connection worked; a later drop is a new problem.
			wait = w.poll
		}
		w.log.Debug("comfyui websocket closed", "url", w.shownURL, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, w.maxBackoff)
	}
}

// readWS connects once and reads until the connection fails or ctx is done.
// framed reports whether any frame arrived.
func (w *Watcher) readWS(ctx context.Context, wsURL string, trigger chan<- struct{}) (framed bool, err error) {
	conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: w.client})
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return false, fmt.Errorf("dial websocket: %w", err)
	}
	defer conn.CloseNow()
	// Binary frames are previews of images being generated and can be large;
	// they are drained below, so no limit applies to the message as a whole.
	conn.SetReadLimit(-1)
	for {
		typ, r, err := conn.Reader(ctx)
		if err != nil {
			return framed, fmt.Errorf("read websocket: %w", err)
		}
		framed = true
		if typ != websocket.MessageText {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return framed, fmt.Errorf("skip binary frame: %w", err)
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(r, maxTextFrame))
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			return framed, fmt.Errorf("read text frame: %w", err)
		}
		var msg struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &msg) != nil || !pollingTypes[msg.Type] {
			continue
		}
		select {
		case trigger <- struct{}{}:
		default: // a poll is already due
		}
	}
}
