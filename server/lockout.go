package server

import (
	"container/list"
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
	// maxTracked bounds the table of failed attempts: a spray of addresses
	// evicts the oldest entries instead of growing it, or slowing every
	// login that has to look through it.
	maxTracked = 10000
)

// lockout remembers wrong passwords per client and locks out those who
// guess too often. It only ever refuses guesses: a session already signed
// in is checked before it and never ends because of it.
type lockout struct {
	now func() time.Time
	max int

	mu sync.Mutex
	// byClient and order hold the same entries; order runs from the least
	// to the most recently failed, so the oldest is evicted in O(1).
	byClient map[string]*list.Element
	order    *list.List
	// lastEnd is when the latest lockout of any client ends.
	lastEnd time.Time
}

type failures struct {
	client string
	count  int
	first  time.Time
	until  time.Time
}

func newLockout(now func() time.Time) *lockout {
	return &lockout{now: now, max: maxTracked, byClient: map[string]*list.Element{}, order: list.New()}
}

// locked reports whether client must wait, and how long.
func (l *lockout) locked(client string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.byClient[client]
	if e == nil {
		return false, 0
	}
	f := e.Value.(*failures)
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
	var f *failures
	if e := l.byClient[client]; e != nil {
		f = e.Value.(*failures)
		l.order.MoveToBack(e)
	} else {
		for l.order.Len() >= l.max {
			oldest := l.order.Front()
			delete(l.byClient, oldest.Value.(*failures).client)
			l.order.Remove(oldest)
		}
		f = &failures{client: client, first: now}
		l.byClient[client] = l.order.PushBack(f)
	}
	if now.Sub(f.first) > failWindow {
		f.count, f.first = 0, now
	}
	f.count++
	if f.count >= maxFailures {
		f.until = now.Add(lockoutFor)
		if f.until.After(l.lastEnd) {
			l.lastEnd = f.until
		}
		f.count, f.first = 0, now
		return true
	}
	return false
}

// anyLocked reports whether some client is locked out now.
func (l *lockout) anyLocked() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now().Before(l.lastEnd)
}

// succeed forgets client's wrong guesses.
func (l *lockout) succeed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.byClient[client]; e != nil {
		delete(l.byClient, client)
		l.order.Remove(e)
	}
}

// tracked is how many clients the table holds.
func (l *lockout) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byClient)
}

// wrongPassword counts a wrong guess from client and logs it.
func (s *Server) wrongPassword(client, what string) {
	if s.guard.lockout.fail(client) {
		s.log.Warn("too many wrong passwords; client locked out", "client", client, "for", lockoutFor.String())
	} else {
		s.log.Warn(what, "client", client)
	}
}

func tooMany(c *fiber.Ctx, wait time.Duration) error {
	c.Set(fiber.HeaderRetryAfter, itoa(int64(wait.Seconds())+1))
	return model.Errorf(model.CodeTooManyAttempts, "Too many wrong passwords: wait %d minutes and try again.", int(wait.Minutes())+1)
}
