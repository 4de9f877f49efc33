package relay

import (
	"sync"
	"sync/atomic"
	"time"

	"streamroom.dev/media/internal/procstat"
)

type counters struct {
	packetsIn, bytesIn   atomic.Uint64
	packetsOut, bytesOut atomic.Uint64
	packetsDropped       atomic.Uint64
	lostIn               atomic.Uint64
	nacksIn, nacksOut    atomic.Uint64
	retransmits          atomic.Uint64
	keyframeRequestsIn   atomic.Uint64
	keyframeRequestsOut  atomic.Uint64
}

// Stats is the stats method's result.
type Stats struct {
	Viewers             int     `json:"viewers"`
	Peers               int     `json:"peers"`
	SourceConnected     bool    `json:"sourceConnected"`
	BitrateIn           uint64  `json:"bitrateIn"`
	BitrateOut          uint64  `json:"bitrateOut"`
	PacketsIn           uint64  `json:"packetsIn"`
	PacketsOut          uint64  `json:"packetsOut"`
	PacketsDropped      uint64  `json:"packetsDropped"`
	LostIn              uint64  `json:"lostIn"`
	NacksIn             uint64  `json:"nacksIn"`
	NacksOut            uint64  `json:"nacksOut"`
	Retransmits         uint64  `json:"retransmits"`
	KeyframeRequestsIn  uint64  `json:"keyframeRequestsIn"`
	KeyframeRequestsOut uint64  `json:"keyframeRequestsOut"`
	CPUSeconds          float64 `json:"cpuSeconds"`
	RSSBytes            int64   `json:"rssBytes"`
}

// rateInterval is the window of bitrateIn and bitrateOut.
const rateInterval = time.Second

// rateSampler turns the byte counters into bits per second over the last interval.
type rateSampler struct {
	in, out atomic.Uint64
	stop    chan struct{}
	once    sync.Once
	done    chan struct{}
}

func newRateSampler(c *counters) *rateSampler {
	s := &rateSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(c)
	return s
}

func (s *rateSampler) run(c *counters) {
	defer close(s.done)
	tick := time.NewTicker(rateInterval)
	defer tick.Stop()
	lastIn, lastOut, lastAt := c.bytesIn.Load(), c.bytesOut.Load(), time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			in, out := c.bytesIn.Load(), c.bytesOut.Load()
			secs := now.Sub(lastAt).Seconds()
			s.in.Store(uint64(float64(in-lastIn) * 8 / secs))
			s.out.Store(uint64(float64(out-lastOut) * 8 / secs))
			lastIn, lastOut, lastAt = in, out, now
		}
	}
}

func (s *rateSampler) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

func (r *Relay) stats() (Stats, error) {
	c := &r.counters
	st := Stats{
		BitrateIn:           r.rates.in.Load(),
		BitrateOut:          r.rates.out.Load(),
		PacketsIn:           c.packetsIn.Load(),
		PacketsOut:          c.packetsOut.Load(),
		PacketsDropped:      c.packetsDropped.Load(),
		LostIn:              c.lostIn.Load(),
		NacksIn:             c.nacksIn.Load(),
		NacksOut:            c.nacksOut.Load(),
		Retransmits:         c.retransmits.Load(),
		KeyframeRequestsIn:  c.keyframeRequestsIn.Load(),
		KeyframeRequestsOut: c.keyframeRequestsOut.Load(),
	}
	r.mu.Lock()
	st.Peers = len(r.peers)
	for _, p := range r.peers {
		if p.viewer != nil && p.isConnected() {
			st.Viewers++
		}
	}
	st.SourceConnected = r.source != nil && r.source.peer.isConnected()
	r.mu.Unlock()

	cpu, err := procstat.CPU()
	if err != nil {
		return st, err
	}
	st.CPUSeconds = cpu.Seconds()
	if st.RSSBytes, err = procstat.RSS(); err != nil {
		return st, err
	}
	return st, nil
}
