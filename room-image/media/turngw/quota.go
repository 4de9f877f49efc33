package turngw

import (
	"net"
	"sync"
	"time"
)

// pendingTimeout is how long a slot granted by the quota check waits for its allocation (pion
// creates it right after the check, unless making the relayed socket fails).
const pendingTimeout = 10 * time.Second

// quota counts allocations in total and per user. pion asks before it creates an allocation
// and reports creations and deletions afterwards; a granted slot is held as pending between the
// two, so that concurrent requests (TCP clients are served in parallel) cannot overshoot.
type quota struct {
	maxTotal, maxUser int
	now               func() time.Time

	mu      sync.Mutex
	total   int               // active and pending
	users   map[string]int    // user → active and pending
	pending map[string]slot   // client (network|address) → granted slot
	active  map[string]string // allocation (client|server address) → user
}

type slot struct {
	user     string
	deadline time.Time
}

func newQuota(maxTotal, maxUser int, now func() time.Time) *quota {
	return &quota{
		maxTotal: maxTotal,
		maxUser:  maxUser,
		now:      now,
		users:    map[string]int{},
		pending:  map[string]slot{},
		active:   map[string]string{},
	}
}

func allocationKey(src, dst net.Addr) string {
	return connKey(src.Network(), src) + "|" + dst.String()
}

// reserve grants user a slot for an allocation from src; it returns "" or the limit reached.
func (q *quota) reserve(user string, src net.Addr) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for k, p := range q.pending {
		if now.After(p.deadline) {
			q.release(p.user)
			delete(q.pending, k)
		}
	}
	key := connKey(src.Network(), src)
	if old, ok := q.pending[key]; ok {
		q.release(old.user)
		delete(q.pending, key)
	}
	switch {
	case q.total >= q.maxTotal:
		return quotaTotal
	case q.users[user] >= q.maxUser:
		return quotaUser
	}
	q.total++
	q.users[user]++
	q.pending[key] = slot{user: user, deadline: now.Add(pendingTimeout)}
	return ""
}

// created turns src's pending slot into an active allocation.
func (q *quota) created(src, dst net.Addr, user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := connKey(src.Network(), src)
	if p, ok := q.pending[key]; ok {
		delete(q.pending, key)
		user = p.user
	} else {
		// The slot timed out before the allocation came: count it again.
		q.total++
		q.users[user]++
	}
	q.active[allocationKey(src, dst)] = user
}

// deleted frees an allocation's slot.
func (q *quota) deleted(src, dst net.Addr) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := allocationKey(src, dst)
	if user, ok := q.active[key]; ok {
		delete(q.active, key)
		q.release(user)
	}
}

func (q *quota) release(user string) {
	q.total--
	if q.users[user] <= 1 {
		delete(q.users, user)
	} else {
		q.users[user]--
	}
}

// allocations returns the number of active allocations.
func (q *quota) allocations() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.active)
}
