package swarm

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/probe"
)

// viewer receives a broadcast and counts it: unique packets, loss from sequence gaps, bytes,
// one-way delay from the probe trailers (when the payloads carry them), and when the first
// packets came. Like a browser it asks for a key frame when the video starts; pion's
// interceptors send its NACKs and receiver reports.
type viewer struct {
	swarm *Swarm
	peer  *peer

	mu          sync.Mutex
	seqs        [2]seqTracker // video, audio
	bytes       uint64
	delay       histogram
	firstPacket time.Time
	firstVideo  time.Time
}

// ViewerStats is a viewer's entry in the stats result (also used for the aggregate).
type ViewerStats struct {
	ID            string  `json:"id,omitempty"`
	Connected     bool    `json:"connected"`
	Packets       uint64  `json:"packets"` // unique packets, audio and video
	Lost          uint64  `json:"lost"`    // expected by sequence numbers but not received
	LossPct       float64 `json:"lossPct"`
	DelayP50Ms    float64 `json:"delayP50Ms"` // one-way, from probe trailers; 0 without any
	DelayP99Ms    float64 `json:"delayP99Ms"`
	FirstPacketAt int64   `json:"firstPacketAt"` // Unix ms of the first RTP packet, 0 before
	FirstVideoAt  int64   `json:"firstVideoAt"`  // Unix ms of the first video packet, 0 before
	Bytes         uint64  `json:"bytes"`
}

func newViewer(s *Swarm, p *peer) *viewer {
	v := &viewer{swarm: s, peer: p}
	// A browser broadcaster's peer library (simple-peer) opens a data channel and drops the whole
	// connection when it closes: keep it open, as a browser viewer would.
	p.pc.OnDataChannel(func(dc *webrtc.DataChannel) { dc.OnMessage(func(webrtc.DataChannelMessage) {}) })
	p.pc.OnTrack(func(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		video := track.Kind() == webrtc.RTPCodecTypeVideo
		if video {
			// A browser asks for a key frame as its decoder starts.
			pli := &rtcp.PictureLossIndication{MediaSSRC: uint32(track.SSRC())}
			if err := p.pc.WriteRTCP([]rtcp.Packet{pli}); err != nil {
				s.log.Debug("viewer PLI not sent", "peer", p.id, "err", err)
			}
		}
		s.goTracked(func() { v.read(track, video) })
		s.goTracked(func() { drainRTCP(receiver) })
	})
	return v
}

func (v *viewer) read(track *webrtc.TrackRemote, video bool) {
	buf := make([]byte, 1500)
	var h rtp.Header
	k := 1
	if video {
		k = 0
	}
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		hn, err := h.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		now := time.Now()
		var sent time.Time
		hasProbe := false
		if video {
			sent, _, hasProbe = probe.Parse(buf[hn:n])
		}
		v.mu.Lock()
		if v.firstPacket.IsZero() {
			v.firstPacket = now
		}
		if video && v.firstVideo.IsZero() {
			v.firstVideo = now
		}
		if v.seqs[k].add(h.SequenceNumber) {
			v.bytes += uint64(n)
			if hasProbe {
				v.delay.add(now.Sub(sent))
			}
		}
		v.mu.Unlock()
	}
}

// drainRTCP reads a receiver's RTCP so that pion's interceptors see it and buffers stay empty.
func drainRTCP(receiver *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := receiver.Read(buf); err != nil {
			return
		}
	}
}

func (v *viewer) stats() ViewerStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := ViewerStats{ID: v.peer.id, Connected: v.peer.isConnected(), Bytes: v.bytes}
	for i := range v.seqs {
		st.Packets += v.seqs[i].unique
		st.Lost += v.seqs[i].lost()
	}
	st.LossPct = lossPct(st.Packets, st.Lost)
	st.DelayP50Ms = v.delay.quantileMs(0.5)
	st.DelayP99Ms = v.delay.quantileMs(0.99)
	st.FirstPacketAt = unixMs(v.firstPacket)
	st.FirstVideoAt = unixMs(v.firstVideo)
	return st
}

func (v *viewer) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range v.seqs {
		v.seqs[i].reset()
	}
	v.bytes = 0
	v.delay = histogram{}
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func lossPct(received, lost uint64) float64 {
	if received+lost == 0 {
		return 0
	}
	return float64(lost) * 100 / float64(received+lost)
}
