package swarm

import (
	"sort"
	"time"
)

// Stats is the stats method's result: the aggregate over all viewers, each viewer, and the
// publishers.
type Stats struct {
	Viewers    int              `json:"viewers"`
	Connected  int              `json:"connected"`
	Aggregate  ViewerStats      `json:"aggregate"`
	PerViewer  []ViewerStats    `json:"perViewer"`
	Publishers []PublisherStats `json:"publishers"`
}

func (s *Swarm) snapshot() (viewers []*viewer, publishers []*publisher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peers {
		if p.viewer != nil {
			viewers = append(viewers, p.viewer)
		}
		if p.publisher != nil {
			publishers = append(publishers, p.publisher)
		}
	}
	return viewers, publishers
}

func (s *Swarm) stats() Stats {
	viewers, publishers := s.snapshot()
	st := Stats{Viewers: len(viewers), PerViewer: make([]ViewerStats, 0, len(viewers)), Publishers: make([]PublisherStats, 0, len(publishers))}
	var all histogram
	for _, v := range viewers {
		vs := v.stats()
		v.mu.Lock()
		all.merge(&v.delay)
		v.mu.Unlock()
		st.PerViewer = append(st.PerViewer, vs)
		if vs.Connected {
			st.Connected++
		}
		st.Aggregate.Packets += vs.Packets
		st.Aggregate.Lost += vs.Lost
		st.Aggregate.Bytes += vs.Bytes
	}
	sort.Slice(st.PerViewer, func(i, j int) bool { return st.PerViewer[i].ID < st.PerViewer[j].ID })
	st.Aggregate.Connected = st.Connected > 0 && st.Connected == st.Viewers
	st.Aggregate.LossPct = lossPct(st.Aggregate.Packets, st.Aggregate.Lost)
	st.Aggregate.DelayP50Ms = all.quantileMs(0.5)
	st.Aggregate.DelayP99Ms = all.quantileMs(0.99)
	for _, p := range publishers {
		st.Publishers = append(st.Publishers, p.stats())
	}
	return st
}

// reset clears the viewers' counters (not when their first packets came).
func (s *Swarm) reset() {
	viewers, _ := s.snapshot()
	for _, v := range viewers {
		v.reset()
	}
}

// seqTracker counts one RTP stream's unique packets and the ones its sequence numbers say are
// missing. Duplicates within the last seqWindow sequence numbers are recognised.
type seqTracker struct {
	started bool
	base    int64 // extended sequence number counting starts at
	highest int64
	seen    [seqWindow / 64]uint64
	unique  uint64
}

const seqWindow = 1024

// add records seq and reports whether it is new.
func (t *seqTracker) add(seq uint16) bool {
	if !t.started {
		t.started = true
		t.base, t.highest = int64(seq), int64(seq)
		t.mark(t.highest)
		t.unique++
		return true
	}
	ext := t.highest + int64(int16(seq-uint16(t.highest)))
	switch {
	case ext > t.highest:
		for s := t.highest + 1; s < ext && s <= t.highest+seqWindow; s++ {
			t.clear(s)
		}
		t.highest = ext
	case ext <= t.highest-seqWindow || ext < t.base:
		return false // too old to tell, or from before counting started
	case t.isSeen(ext):
		return false
	}
	t.mark(ext)
	t.unique++
	return true
}

func (t *seqTracker) bit(s int64) (int, uint64) {
	i := int(uint64(s) % seqWindow)
	return i / 64, 1 << (i % 64)
}
func (t *seqTracker) mark(s int64)        { w, b := t.bit(s); t.seen[w] |= b }
func (t *seqTracker) clear(s int64)       { w, b := t.bit(s); t.seen[w] &^= b }
func (t *seqTracker) isSeen(s int64) bool { w, b := t.bit(s); return t.seen[w]&b != 0 }

// lost is how many packets between the first and the highest were not received.
func (t *seqTracker) lost() uint64 {
	if !t.started {
		return 0
	}
	expected := uint64(t.highest - t.base + 1)
	if t.unique >= expected {
		return 0
	}
	return expected - t.unique
}

// reset starts counting again after the highest packet so far.
func (t *seqTracker) reset() {
	if !t.started {
		return
	}
	t.base = t.highest + 1
	t.unique = 0
}

// histogram of delays: 0.25 ms buckets up to 50 ms, 5 ms buckets up to 1 s, then one bucket.
type histogram struct {
	counts [histFine + histCoarse + 1]uint32
	n      uint64
}

const (
	histFineStep   = 250 * time.Microsecond
	histFine       = 200 // up to 50 ms
	histCoarseStep = 5 * time.Millisecond
	histCoarse     = 190 // up to 1 s
)

func (h *histogram) add(d time.Duration) {
	d = max(d, 0)
	var i int
	switch {
	case d < histFine*histFineStep:
		i = int(d / histFineStep)
	case d < histFine*histFineStep+histCoarse*histCoarseStep:
		i = histFine + int((d-histFine*histFineStep)/histCoarseStep)
	default:
		i = histFine + histCoarse
	}
	h.counts[i]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantileMs returns the q quantile in milliseconds (the middle of its bucket), 0 when empty.
func (h *histogram) quantileMs(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n-1))
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen > rank {
			var mid time.Duration
			switch {
			case i < histFine:
				mid = time.Duration(i)*histFineStep + histFineStep/2
			case i < histFine+histCoarse:
				mid = histFine*histFineStep + time.Duration(i-histFine)*histCoarseStep + histCoarseStep/2
			default:
				mid = histFine*histFineStep + histCoarse*histCoarseStep
			}
			return float64(mid) / float64(time.Millisecond)
		}
	}
	return 0
}
