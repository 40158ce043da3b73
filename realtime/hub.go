// Package realtime is the WebSocket hub behind GET /ws: it sends every connected
// client a snapshot of the dashboard's state, then every event published after it,
// in order, to every client at once.
//
// The hub knows neither Fiber nor SQL. It drives any connection that satisfies Conn
// (the gorilla-style API of github.com/fasthttp/websocket, which the Fiber websocket
// handler embeds) and gets the snapshot from a function its caller passes in.
//
// Each client has a writer goroutine that owns every write (frames, pings, close
// frames) and a bounded send buffer; the goroutine that called Serve reads and
// discards what the client sends. Publishing never blocks: a client whose buffer is
// full is dropped and is expected to reconnect and get a fresh snapshot.
package realtime

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is the part of a WebSocket connection the hub uses (satisfied by
// *github.com/fasthttp/websocket.Conn and so by the Fiber websocket Conn).
type Conn interface {
	SetReadLimit(limit int64)
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	SetPongHandler(h func(appData string) error)
	ReadMessage() (messageType int, p []byte, err error)
	WriteMessage(messageType int, data []byte) error
	WriteControl(messageType int, data []byte, deadline time.Time) error
	Close() error
}

// Options tunes a Hub. Zero values take the defaults noted on each field.
type Options struct {
	Logger       *slog.Logger  // nil → slog.Default()
	SendBuffer   int           // per-client queued frames; 0 → 256
	PingInterval time.Duration // 0 → 30s
	PongWait     time.Duration // 0 → PingInterval + 10s (read deadline, extended by each pong/any frame)
	WriteWait    time.Duration // 0 → 10s
	ReadLimit    int64         // 0 → 4096 bytes (clients send nothing meaningful)
	// MaxClients bounds the clients served at once; 0 → DefaultMaxClients.
	MaxClients int
	// MaxClientsPerAddress bounds those from one address (as the caller of
	// Serve names it), so one machine cannot take every place; 0 →
	// DefaultMaxClientsPerAddress.
	MaxClientsPerAddress int

	// OnWatch, when set, is called with true when the first client registers
	// and with false when the last one leaves, so an owner can do work (such
	// as measuring the pod every few seconds) only while someone watches.
	// Calls are made one at a time, in order, while the hub holds its lock:
	// OnWatch must return quickly and must not call the hub.
	OnWatch func(watching bool)
}

// The default limits. Behind a proxy that is not trusted every client has
// the proxy's address, so the per-address limit is what such a dashboard
// can hold: it leaves room for the 1,000-client load test from one address,
// and still keeps three quarters of the places from any one address.
const (
	DefaultMaxClients           = 4096
	DefaultMaxClientsPerAddress = 1024
)

// Message types and close codes from RFC 6455, declared here so the hub does not
// depend on a WebSocket library.
const (
	textMessage  = 1
	closeMessage = 8
	pingMessage  = 9

	closeGoingAway       = 1001
	closePolicyViolation = 1008
	closeInternalError   = 1011
	closeTryAgainLater   = 1013
)

// Close reasons sent to clients; short because a close frame holds at most 123 bytes.
const (
	reasonShutdown      = "server shutting down"
	reasonTooSlow       = "client too slow, reconnect"
	reasonPongTimeout   = "ping timeout"
	reasonSnapshotError = "snapshot failed"
	reasonTooMany       = "too many connections"
)

// Hub fans published events out to every connected client. It is safe for
// concurrent use. The zero value is not usable; call New.
type Hub struct {
	log          *slog.Logger
	sendBuffer   int
	pingInterval time.Duration
	pongWait     time.Duration
	writeWait    time.Duration
	readLimit    int64
	maxClients   int
	maxPerAddr   int
	onWatch      func(bool)

	nextID atomic.Uint64

	// mu guards clients and closed. Publish holds it for the whole fan-out so that
	// concurrent publishers are serialised and every client sees the same order.
	mu      sync.Mutex
	clients map[*client]struct{}
	// live holds every client whose Serve has not returned, including those
	// dropped from clients (too slow) that are still being closed.
	live    map[*client]struct{}
	perAddr map[string]int // live clients by address
	closed  bool

	// serving counts Serve calls that registered a client, so Close can wait for them.
	serving sync.WaitGroup
}

// New returns a Hub configured by opts.
func New(opts Options) *Hub {
	h := &Hub{
		log:          opts.Logger,
		sendBuffer:   opts.SendBuffer,
		pingInterval: opts.PingInterval,
		pongWait:     opts.PongWait,
		writeWait:    opts.WriteWait,
		readLimit:    opts.ReadLimit,
		maxClients:   opts.MaxClients,
		maxPerAddr:   opts.MaxClientsPerAddress,
		onWatch:      opts.OnWatch,
		clients:      make(map[*client]struct{}),
		live:         make(map[*client]struct{}),
		perAddr:      make(map[string]int),
	}
	if h.maxClients <= 0 {
		h.maxClients = DefaultMaxClients
	}
	if h.maxPerAddr <= 0 {
		h.maxPerAddr = DefaultMaxClientsPerAddress
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.sendBuffer <= 0 {
		h.sendBuffer = 256
	}
	if h.pingInterval <= 0 {
		h.pingInterval = 30 * time.Second
	}
	if h.pongWait <= 0 {
		h.pongWait = h.pingInterval + 10*time.Second
	}
	if h.writeWait <= 0 {
		h.writeWait = 10 * time.Second
	}
	if h.readLimit <= 0 {
		h.readLimit = 4096
	}
	return h
}

// envelope is the shape of every frame the hub sends.
type envelope struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// Publish sends {"type":typ,"data":data} to every connected client. The event is
// marshalled once. Publish never blocks on a client: one whose send buffer is full
// is dropped (close code 1013) while the others carry on. Events from one goroutine
// arrive in the order they were published. A value that cannot be marshalled is
// logged and not sent.
func (h *Hub) Publish(typ string, data any) {
	h.mu.Lock()
	idle := h.closed || len(h.clients) == 0
	h.mu.Unlock()
	if idle {
		// Nobody to tell. A client that registers right after this still sees the
		// event's effect, because its snapshot is taken after registering.
		return
	}

	frame, err := json.Marshal(envelope{Type: typ, Data: data})
	if err != nil {
		h.log.Error("marshal event", "type", typ, "err", err)
		return
	}

	var dropped []uint64
	h.mu.Lock()
	for c := range h.clients {
		select {
		case c.send <- frame:
		default:
			h.removeLocked(c)
			if c.stop(closeTryAgainLater, reasonTooSlow) {
				dropped = append(dropped, c.id)
			}
		}
	}
	h.mu.Unlock()

	for _, id := range dropped {
		h.log.Warn("dropped slow client", "client", id, "send_buffer", h.sendBuffer)
	}
}

// LimitError says a client was refused because the hub is full.
type LimitError struct {
	PerAddress bool // the limit of one address, not the total
	Limit      int
}

func (e *LimitError) Error() string {
	if e.PerAddress {
		return fmt.Sprintf("too many connections from one address (limit %d)", e.Limit)
	}
	return fmt.Sprintf("too many connections (limit %d)", e.Limit)
}

// Admit reports whether a client from this address would be served now, as
// a *LimitError when it would not. Serve checks again: Admit only lets a
// caller refuse before the WebSocket upgrade, with an HTTP answer.
func (h *Hub) Admit(from string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.admitLocked(from)
}

func (h *Hub) admitLocked(from string) error {
	if len(h.live) >= h.maxClients {
		return &LimitError{Limit: h.maxClients}
	}
	if h.perAddr[from] >= h.maxPerAddr {
		return &LimitError{PerAddress: true, Limit: h.maxPerAddr}
	}
	return nil
}

// Limits returns the most clients served at once, in all and per address.
func (h *Hub) Limits() (total, perAddress int) { return h.maxClients, h.maxPerAddr }

// Clients reports how many clients are registered for events.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Close sends close code 1001 to every client and waits until every Serve call
// has returned, or until ctx is done: then it closes the connections of the
// clients still being served (a client that stopped reading leaves its writer
// blocked in a write until the write deadline, longer than any shutdown
// budget), which makes their Serve calls return, and returns without waiting
// for them. Serve calls made after Close close their connection at once.
// Close is safe to call more than once.
func (h *Hub) Close(ctx context.Context) {
	h.mu.Lock()
	h.closed = true
	for c := range h.clients {
		c.stop(closeGoingAway, reasonShutdown)
	}
	h.mu.Unlock()

	// This goroutine ends when the last Serve does: at once, or soon after
	// the deadline below cuts off whoever is left.
	done := make(chan struct{})
	go func() {
		h.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	h.mu.Lock()
	stuck := len(h.live)
	for c := range h.live {
		// Safe while c is live: its Serve has not returned, so the
		// connection is still its own.
		abort(c.conn)
	}
	h.mu.Unlock()
	if stuck > 0 {
		h.log.Warn("closed clients still being served at the shutdown deadline", "clients", stuck)
	}
}

// Serve runs one client for the whole life of its connection and must be called
// from the connection's handler (with Fiber's websocket, the handler must not
// return before the connection is done, and Serve guarantees that).
//
// The first frame is {"type":"snapshot","data":snapshot()}. The client is
// registered for events before snapshot is called and the events published
// meanwhile are held and sent right after the snapshot, so none is lost; a client
// may therefore see an event whose effect is already in the snapshot.
//
// from names the client's address for MaxClientsPerAddress. A client beyond
// the limits gets close code 1013 ("too many connections") and Serve returns a
// *LimitError.
//
// Serve returns when the client leaves, is dropped, or the hub closes. It closes
// conn before returning, and after it returns no goroutine touches conn. It
// returns an error only when the client was refused or snapshot fails (close
// code 1011); the hub has already logged either, so callers may ignore the
// result.
func (h *Hub) Serve(conn Conn, from string, snapshot func() (any, error)) error {
	c, err := h.register(conn, from)
	if err != nil {
		code, reason := closeTryAgainLater, reasonTooMany
		if errors.Is(err, errClosed) {
			code, reason, err = closeGoingAway, reasonShutdown, nil
		} else {
			h.log.Warn("refused a client: too many connections", "from", from, "err", err)
		}
		_ = conn.WriteControl(closeMessage, closeFrame(code, reason), time.Now().Add(h.writeWait))
		_ = conn.Close()
		return err
	}
	// Deferred in this order so that conn is closed before Close can see this
	// Serve as finished.
	defer h.unregister(c)
	defer conn.Close()

	first, err := snapshotFrame(snapshot)
	if err != nil {
		h.log.Error("build snapshot", "client", c.id, "err", err)
		_ = conn.WriteControl(closeMessage, closeFrame(closeInternalError, reasonSnapshotError), time.Now().Add(h.writeWait))
		return err
	}

	// Configure reading before the writer starts pinging, so that the first pong
	// already extends the deadline.
	conn.SetReadLimit(h.readLimit)
	conn.SetPongHandler(func(string) error {
		c.extendReadDeadline()
		return nil
	})
	c.extendReadDeadline()

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(first)
	}()

	readErr := c.readLoop()
	if isTimeout(readErr) && c.stop(closePolicyViolation, reasonPongTimeout) {
		h.log.Warn("dropped unresponsive client", "client", c.id, "pong_wait", h.pongWait)
	} else {
		// The client closed, sent something too big (the library has already sent
		// 1009), or the connection broke: there is nobody to send a close frame to.
		c.stop(0, "")
	}
	<-writerDone
	h.log.Debug("client disconnected", "client", c.id, "reason", c.reason, "read_err", readErr)
	return nil
}

// errClosed refuses a client because the hub is closed.
var errClosed = errors.New("hub closed")

// register adds a client for conn unless the hub is closed or full.
func (h *Hub) register(conn Conn, from string) (*client, error) {
	c := &client{
		from:      from,
		id:        h.nextID.Add(1),
		conn:      conn,
		send:      make(chan []byte, h.sendBuffer),
		quit:      make(chan struct{}),
		pingEvery: h.pingInterval,
		pongWait:  h.pongWait,
		writeWait: h.writeWait,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	if err := h.admitLocked(from); err != nil {
		return nil, err
	}
	h.clients[c] = struct{}{}
	h.live[c] = struct{}{}
	h.perAddr[from]++
	if len(h.clients) == 1 && h.onWatch != nil {
		h.onWatch(true)
	}
	h.serving.Add(1)
	return c, nil
}

// unregister forgets c (Publish or Close may have done so already) and marks its
// Serve as finished.
func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	h.removeLocked(c)
	delete(h.live, c)
	if h.perAddr[c.from]--; h.perAddr[c.from] <= 0 {
		delete(h.perAddr, c.from)
	}
	h.mu.Unlock()
	h.serving.Done()
}

// netConner is a connection that exposes its network connection, as
// fasthttp/websocket's (and so Fiber's) does.
type netConner interface{ NetConn() net.Conn }

// abort ends conn now, even in the middle of a write: a deadline in the past
// fails a blocked write at once, where closing does not (a connection
// hijacked from fasthttp ignores Close until its handler returns).
func abort(conn Conn) {
	if nc, ok := conn.(netConner); ok {
		if n := nc.NetConn(); n != nil {
			_ = n.SetDeadline(time.Now())
		}
	}
	_ = conn.Close()
}

// removeLocked forgets c, telling the owner when it was the last client. The
// caller holds h.mu.
func (h *Hub) removeLocked(c *client) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	if len(h.clients) == 0 && h.onWatch != nil {
		h.onWatch(false)
	}
}

// snapshotFrame calls snapshot and marshals its result as the snapshot frame.
func snapshotFrame(snapshot func() (any, error)) ([]byte, error) {
	var data any
	if snapshot != nil {
		var err error
		if data, err = snapshot(); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	frame, err := json.Marshal(envelope{Type: "snapshot", Data: data})
	if err != nil {
		return nil, fmt.Errorf("marshal snapshot: %w", err)
	}
	return frame, nil
}

// client is one connection's state shared by its reader (Serve's goroutine), its
// writer goroutine and the hub.
type client struct {
	id        uint64
	from      string // the address it counts against
	conn      Conn
	send      chan []byte
	pingEvery time.Duration
	pongWait  time.Duration
	writeWait time.Duration

	// quit is closed by stop; code and reason are written before it is closed and
	// read only after, so they need no lock.
	stopOnce sync.Once
	quit     chan struct{}
	code     int // close code the writer sends; 0 sends none
	reason   string

	// deadlineMu orders the reader's deadline extensions with the writer's final
	// past deadline, so a pong arriving late cannot undo the wake-up.
	deadlineMu sync.Mutex
	ending     bool
}

// stop asks the writer to send a close frame with code (none when 0) and end.
// Only the first call counts; it reports whether this call was the first.
func (c *client) stop(code int, reason string) bool {
	first := false
	c.stopOnce.Do(func() {
		c.code, c.reason = code, reason
		close(c.quit)
		first = true
	})
	return first
}

// extendReadDeadline gives the peer another pongWait to show it is alive.
func (c *client) extendReadDeadline() {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	if !c.ending {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.pongWait))
	}
}

// wakeReader makes the blocked ReadMessage return: closing the connection does not
// reliably do that (it does not under Fiber), a past deadline does.
func (c *client) wakeReader() {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.ending = true
	_ = c.conn.SetReadDeadline(time.Now())
}

// readLoop reads and discards frames until the connection fails, the client
// leaves, or the writer wakes it. Every frame is a sign of life.
func (c *client) readLoop() error {
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return err
		}
		c.extendReadDeadline()
	}
}

// writeLoop owns every write on the connection: the snapshot, the events, pings
// and the final close frame. When it ends it wakes the reader.
func (c *client) writeLoop(first []byte) {
	defer c.wakeReader()

	if !c.write(first) {
		return
	}
	ping := time.NewTicker(c.pingEvery)
	defer ping.Stop()
	for {
		// Checked first so that a stop is not delayed by a full buffer of events.
		select {
		case <-c.quit:
			c.sendClose()
			return
		default:
		}
		select {
		case <-c.quit:
			c.sendClose()
			return
		case frame := <-c.send:
			if !c.write(frame) {
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(pingMessage, nil, time.Now().Add(c.writeWait)); err != nil {
				c.stop(0, "ping failed")
				return
			}
		}
	}
}

// write sends one text frame; on failure it stops the client and reports false.
func (c *client) write(frame []byte) bool {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.writeWait))
	if err := c.conn.WriteMessage(textMessage, frame); err != nil {
		c.stop(0, "write failed")
		return false
	}
	return true
}

// sendClose sends the close frame stop asked for, if any.
func (c *client) sendClose() {
	if c.code == 0 {
		return
	}
	_ = c.conn.WriteControl(closeMessage, closeFrame(c.code, c.reason), time.Now().Add(c.writeWait))
}

// closeFrame is the payload of a close frame: the code, big-endian, then the reason.
func closeFrame(code int, reason string) []byte {
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...)
}

// isTimeout reports whether err is a read deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
