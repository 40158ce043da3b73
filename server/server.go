// Package server is the dashboard's HTTP face: the Fiber app, its routes, the
// JSON error envelope, and the WebSocket endpoint that feeds the hub.
package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"dashboard/activity"
	"dashboard/db"
	"dashboard/downloader"
	"dashboard/model"
	"dashboard/realtime"
	"dashboard/settings"
	"dashboard/system"
)

// BodyLimit is the largest request body accepted, but for the routes in
// largeBodies.
const BodyLimit = 64 << 10

// largeBodies are the routes that take more than BodyLimit: a workflow, or
// an image with one in it, may be tens of MB.
var largeBodies = map[string]int{
	"POST /api/workflows/analyze": WorkflowLimit,
}

// WorkflowLimit is the largest workflow (or PNG) analysed.
const WorkflowLimit = 32 << 20

// Config wires a Server.
type Config struct {
	Version    string
	Store      *db.Store
	Hub        *realtime.Hub
	Activity   *activity.Log
	Settings   *settings.Service
	Downloads  *downloader.Manager
	System     *system.Monitor
	ModelsDir  string // where preset and workflow files go
	Logger     *slog.Logger
	UI         fiber.Handler // serves the embedded pages
	Password   string        // "" leaves the dashboard open
	SessionKey []byte        // signs login cookies; kept in the DB so sessions survive restarts
	// Mode says whether this dashboard writes to the volume or only reads
	// it; nil means it always writes.
	Mode func() model.Mode

	// Hostname is this machine's name; requests may use it as Host.
	Hostname string
	// AllowedHosts are more names (or "*.suffix" patterns) the dashboard
	// answers to: DASHBOARD_ALLOWED_HOSTS.
	AllowedHosts []string
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Host are believed: TRUSTED_PROXIES.
	TrustedProxies []netip.Prefix
}

// Server is the HTTP side of the dashboard.
type Server struct {
	cfg   Config
	log   *slog.Logger
	app   *fiber.App
	guard *guard // nil when no password is set
}

// New builds the app with every route.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if cfg.Password != "" {
		s.guard = newGuard(cfg.Password, cfg.SessionKey, time.Now)
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "dashboard",
		BodyLimit:             BodyLimit,
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		// Values from the request (params, headers) are copies, so one kept
		// past the handler (a map key, a queued download's preset id) cannot
		// change when fasthttp reuses its buffers.
		Immutable: true,
		// The router matches the path exactly as sent, so the password
		// check, which looks at that same path, can never judge a path
		// the router reads differently (/API/… as /api/…, /x/ as /x).
		CaseSensitive: true,
		StrictRouting: true,
		ReadTimeout:   30 * time.Second,
		IdleTimeout:   120 * time.Second,
	})
	// The limit is decided from the request line and headers, before the
	// body is read, so a large body is refused on every other route, and
	// on these without a login, without reading it.
	s.app.Server().HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if n, ok := largeBodies[string(h.Method())+" "+string(requestPath(h))]; ok && s.mayOpen(h) {
			return fasthttp.RequestConfig{MaxRequestBodySize: n}
		}
		return fasthttp.RequestConfig{}
	}
	s.routes()
	return s
}

// requestPath is the path of the request line, without the query.
func requestPath(h *fasthttp.RequestHeader) []byte {
	uri := h.RequestURI()
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return uri
}

// bodyLimit is the largest body the request's route takes.
func bodyLimit(c *fiber.Ctx) int {
	if n, ok := largeBodies[c.Method()+" "+c.Path()]; ok {
		return n
	}
	return BodyLimit
}

// App exposes the Fiber app (tests use app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Serve answers on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.app.Listener(ln)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown waits for in-flight requests, at most until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.app.ShutdownWithContext(ctx)
}
