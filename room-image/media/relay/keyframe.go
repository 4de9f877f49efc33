package relay

import (
	"sync"
	"time"
)

// keyframer coalesces key frame requests to the source: at most one per interval. A request
// within the interval is sent when the interval ends, unless a key frame passes before.
type keyframer struct {
	interval time.Duration
	send     func() bool // asks the source; false when there is no source to ask

	mu      sync.Mutex
	last    time.Time
	pending bool
	timer   *time.Timer
	closed  bool
}

func newKeyframer(interval time.Duration, send func() bool) *keyframer {
	return &keyframer{interval: interval, send: send}
}

// request asks for a key frame.
func (k *keyframer) request() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	if k.timer != nil {
		k.pending = true
		k.mu.Unlock()
		return
	}
	now := time.Now()
	if wait := k.last.Add(k.interval).Sub(now); wait > 0 {
		k.pending = true
		k.timer = time.AfterFunc(wait, k.fire)
		k.mu.Unlock()
		return
	}
	k.sendLocked(now)
}

func (k *keyframer) fire() {
	k.mu.Lock()
	k.timer = nil
	if !k.pending || k.closed {
		k.mu.Unlock()
		return
	}
	k.sendLocked(time.Now())
}

// sendLocked claims the interval starting at now, unlocks k.mu and sends.
func (k *keyframer) sendLocked(now time.Time) {
	k.pending = false
	k.last = now
	k.mu.Unlock()
	if !k.send() {
		// No source to ask: give the interval back. A new source's first packets ask for a key
		// frame themselves.
		k.mu.Lock()
		if k.last.Equal(now) {
			k.last = time.Time{}
		}
		k.mu.Unlock()
	}
}

// keyframeSeen tells that a key frame went out to the viewers: requests made before it are met.
func (k *keyframer) keyframeSeen() {
	k.mu.Lock()
	k.pending = false
	k.mu.Unlock()
}

func (k *keyframer) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
}
