package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"dashboard/downloader"
	"dashboard/model"
	"dashboard/realtime"
	"dashboard/settings"
	"dashboard/system"
)

// Snapshot is the first frame a WebSocket client gets: everything a page
// shows, so a client that (re)connects needs nothing else.
type Snapshot struct {
	Downloads []downloader.Download `json:"downloads"`
	Activity  []model.Activity      `json:"activity"`
	Settings  settings.View         `json:"settings"`
	Presets   downloader.PresetList `json:"presets"`
	Mode      model.Mode            `json:"mode"`
	// System is the pod's last measurement when it is recent, else null:
	// the first client after a quiet spell gets a fresh "system" frame at
	// once instead.
	System *system.System `json:"system"`
}

// snapshotActivity is how many of the newest activity rows a snapshot holds.
const snapshotActivity = 50

// takeSnapshot reads the state a new client starts from.
func (s *Server) takeSnapshot() (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := s.cfg.Store.ListActivity(ctx, model.ActivityFilter{Limit: snapshotActivity})
	if err != nil {
		return nil, fmt.Errorf("snapshot activity: %w", err)
	}
	view, err := s.cfg.Settings.View(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot settings: %w", err)
	}
	return Snapshot{
		Downloads: nonNil(s.cfg.Downloads.Downloads()),
		Activity:  nonNil(rows),
		Settings:  view,
		Presets:   s.cfg.Downloads.PresetList(),
		Mode:      s.mode(),
		System:    s.cfg.System.Latest(),
	}, nil
}

// localClient is where admitWS leaves the client's name for handleWS.
const localClient = "ws_client"

// admitWS refuses, before the upgrade, a client the hub has no place for, so
// it gets an HTTP answer it can read rather than a close frame. The hub
// checks again when it serves the client.
func (s *Server) admitWS(c *fiber.Ctx) error {
	from := s.clientKey(c)
	if err := s.cfg.Hub.Admit(from); err != nil {
		var le *realtime.LimitError
		if errors.As(err, &le) && le.PerAddress {
			return model.Errorf(model.CodeTooManyClients, "This address already has %d live connections to the dashboard, the most it may have: close some of its tabs, then reload.", le.Limit)
		}
		return model.Errorf(model.CodeTooManyClients, "The dashboard already has %d live connections, the most it serves: try again once some have closed.", s.cfg.Hub.Clients())
	}
	c.Locals(localClient, from)
	return c.Next()
}

func (s *Server) handleWS() fiber.Handler {
	return websocket.New(func(c *websocket.Conn) {
		from, _ := c.Locals(localClient).(string)
		if err := s.cfg.Hub.Serve(c, from, s.takeSnapshot); err != nil {
			s.log.Debug("websocket client ended", "err", err)
		}
	}, websocket.Config{
		// Origins are checked by checkOrigin before the upgrade.
		ReadBufferSize:  4096,
		WriteBufferSize: 16384,
	})
}
