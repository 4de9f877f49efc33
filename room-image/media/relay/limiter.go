package relay

import (
	"sync"
	"time"
)

// tokenBucket polices a source's bitrate: packets beyond rate (with a burst of burst bytes)
// are refused.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(bitsPerSecond int, burst time.Duration) *tokenBucket {
	rate := float64(bitsPerSecond) / 8
	b := max(rate*burst.Seconds(), 64<<10)
	return &tokenBucket{rate: rate, burst: b, tokens: b, last: time.Now()}
}

// allow takes n bytes from the bucket, or reports false when it holds fewer.
func (b *tokenBucket) allow(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}
