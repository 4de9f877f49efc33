package swarm

import (
	"testing"
	"time"
)

func TestSeqTracker(t *testing.T) {
	var s seqTracker
	for _, seq := range []uint16{65530, 65531, 65533, 65534, 65534, 1, 2} { // wraps; 65532, 65535, 0 missing; one duplicate
		s.add(seq)
	}
	if s.unique != 6 || s.lost() != 3 {
		t.Fatalf("unique %d lost %d, want 6 and 3", s.unique, s.lost())
	}
	if !s.add(0) || s.add(0) { // a retransmission arrives once, then again
		t.Fatal("late packet not counted once")
	}
	if s.lost() != 2 {
		t.Fatalf("lost %d after a retransmission, want 2", s.lost())
	}
	s.reset()
	if s.lost() != 0 || s.unique != 0 {
		t.Fatalf("after reset: unique %d lost %d", s.unique, s.lost())
	}
	s.add(65532) // from before the reset: ignored
	s.add(3)
	s.add(5)
	if s.unique != 2 || s.lost() != 1 {
		t.Fatalf("after reset: unique %d lost %d, want 2 and 1", s.unique, s.lost())
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantileMs(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	for i := range 99 {
		h.add(time.Duration(i%10) * time.Millisecond)
	}
	h.add(300 * time.Millisecond)
	if got := h.quantileMs(0.5); got < 4 || got > 5.5 {
		t.Errorf("median %.2f ms, want about 5", got)
	}
	if got := h.quantileMs(1); got < 295 || got > 305 {
		t.Errorf("max %.2f ms, want about 300", got)
	}
	h.add(time.Hour)
	h.add(-time.Second)
	var all histogram
	all.merge(&h)
	if all.n != 102 {
		t.Errorf("merged %d samples", all.n)
	}
}
