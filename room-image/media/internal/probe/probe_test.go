package probe

import (
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	payload := make([]byte, 100)
	now := time.Now()
	Put(payload, now, 42)
	sent, counter, ok := Parse(payload)
	if !ok || !sent.Equal(time.Unix(0, now.UnixNano())) || counter != 42 {
		t.Fatalf("got %v %d %v", sent, counter, ok)
	}
	if _, _, ok := Parse(make([]byte, 100)); ok {
		t.Error("a payload without a trailer parsed")
	}
	if _, _, ok := Parse(make([]byte, Size-1)); ok {
		t.Error("a short payload parsed")
	}
}
