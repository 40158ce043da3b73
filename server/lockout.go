package server

import (
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"dashboard/model"
)

// After maxFailures wrong passwords within failWindow, a client is refused
// for lockoutFor.
const (
	maxFailures = 5
	failWindow  = time.Minute
	lockoutFor  = 5 * time.Minute
	// maxClients bounds the table of failed attempts under a spray of addresses.
	maxClients = 10000
)

// lockout remembers wrong passwords per client and locks out those who
// guess too often.
type lockout struct {
	now func() time.Time

	mu       sync.Mutex
	failures map[string]*failures
}

type failures struct {
	count int
	first time.Time
	until time.Time
}

func newLockout(now func() time.Time) *lockout {
	return &lockout{now: now, failures: map[string]*failures{}}
}

// locked reports whether client must wait, and how long.
func (l *lockout) locked(client string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[client]
	if f == nil {
		return false, 0
	}
	if now := l.now(); now.Before(f.until) {
		return true, f.until.Sub(now)
	}
	return false, 0
}

// fail records a wrong password from client and reports whether it is now
// locked out.
func (l *lockout) fail(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.failures) > maxClients {
		for k, f := range l.failures {
			if now.After(f.until) && now.Sub(f.first) > failWindow {
				delete(l.failures, k)
			}
		}
	}
	f := l.failures[client]
	if f == nil || now.Sub(f.first) > failWindow {
		f = &failures{first: now}
		l.failures[client] = f
	}
	f.count++
	if f.count >= maxFailures {
		f.until = now.Add(lockoutFor)
		f.count, f.first = 0, now
		return true
	}
	return false
}

// succeed forgets client's wrong guesses.
func (l *lockout) succeed(client string) {
	l.mu.Lock()
	delete(l.failures, client)
	l.mu.Unlock()
}

// wrongPassword counts a wrong guess from client and logs it.
func (s *Server) wrongPassword(client, what string) {
	if s.guard.lockout.fail(client) {
		s.log.Warn("too many wrong passwords; client locked out", "client", client, "for", lockoutFor.String())
	} else {
		s.log.Warn(what, "client", client)
	}
}

// clientKey names the client for the wrong-password count. Behind the pod's
// proxy every request comes from the proxy's address, so there the last
// X-Forwarded-For entry (the one the proxy itself added, which a client
// cannot forge) names the client; otherwise one stranger could lock the
// owner out.
func clientKey(c *fiber.Ctx) string {
	peer := c.Context().RemoteIP()
	xff := c.Get(fiber.HeaderXForwardedFor)
	if xff == "" || peer == nil || !(peer.IsLoopback() || peer.IsPrivate()) {
		return c.IP()
	}
	parts := strings.Split(xff, ",")
	if last := strings.TrimSpace(parts[len(parts)-1]); last != "" {
		return strings.Clone(last) // kept in the failure map after the request's buffers are reused
	}
	return c.IP()
}

func tooMany(c *fiber.Ctx, wait time.Duration) error {
	c.Set(fiber.HeaderRetryAfter, itoa(int64(wait.Seconds())+1))
	return model.Errorf(model.CodeTooManyAttempts, "Too many wrong passwords: wait %d minutes and try again.", int(wait.Minutes())+1)
}
