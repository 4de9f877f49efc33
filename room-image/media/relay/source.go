package relay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// publishBurst is how much a source may briefly exceed its bitrate cap (a key frame).
const publishBurst = time.Second

// source is the room's publisher: its packets go to the tracks while it is current.
type source struct {
	peer   *peer
	bucket *tokenBucket

	current   atomic.Bool   // it is the room's source
	videoSSRC atomic.Uint32 // 0 until its video arrives

	mu     sync.Mutex
	kinds  [2]bool // a track of this kind is being forwarded
	closed bool
}

func newSource(p *peer, maxBitrate int) *source {
	s := &source{peer: p, bucket: newTokenBucket(maxBitrate, publishBurst)}
	p.source = s
	p.pc.OnTrack(s.onTrack)
	// A browser's peer library may open a data channel (simple-peer always does, and closes the
	// whole connection when its channel closes): keep it open and drop what arrives on it.
	p.pc.OnDataChannel(func(dc *webrtc.DataChannel) { dc.OnMessage(func(webrtc.DataChannelMessage) {}) })
	return s
}

// onTrack starts forwarding the first track of each kind; the offer was checked to hold at most
// one section per kind, so a second track of a kind (simulcast layers) is left unread.
func (s *source) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	k := kindAudio
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		k = kindVideo
	}
	r := s.peer.relay
	s.mu.Lock()
	if s.kinds[k] || s.closed {
		s.mu.Unlock()
		r.log.Warn("ignoring an extra source track", "peer", s.peer.id, "kind", k.String(), "ssrc", uint32(remote.SSRC()))
		return
	}
	s.kinds[k] = true
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		s.mu.Unlock()
		return
	}
	r.wg.Add(2)
	r.mu.Unlock()
	s.mu.Unlock()

	if k == kindVideo {
		s.videoSSRC.Store(uint32(remote.SSRC()))
	}
	r.log.Info("source track", "peer", s.peer.id, "kind", k.String(), "ssrc", uint32(remote.SSRC()), "codec", remote.Codec().MimeType)
	go s.readRTP(remote, r.trackOf(k))
	go s.readRTCP(receiver, remote, r.trackOf(k))
}

func (s *source) readRTP(remote *webrtc.TrackRemote, t *track) {
	r := s.peer.relay
	defer r.wg.Done()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		r.counters.packetsIn.Add(1)
		r.counters.bytesIn.Add(uint64(n))
		if !s.current.Load() {
			continue
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		t.ingest(streamKey{src: s, ssrc: pkt.SSRC}, &pkt, n)
	}
}

// readRTCP drains the receiver's RTCP (pion's interceptors see it on the way) and maps the
// source's sender reports to the viewers.
func (s *source) readRTCP(receiver *webrtc.RTPReceiver, remote *webrtc.TrackRemote, t *track) {
	defer s.peer.relay.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := receiver.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil || !s.current.Load() {
			continue
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == uint32(remote.SSRC()) {
				t.senderReport(streamKey{src: s, ssrc: sr.SSRC}, sr.NTPTime, sr.RTPTime)
			}
		}
	}
}

// requestKeyframe sends a PLI for the source's video; false when it has none yet.
func (s *source) requestKeyframe() bool {
	ssrc := s.videoSSRC.Load()
	if ssrc == 0 {
		return false
	}
	if err := s.peer.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		s.peer.relay.log.Debug("keyframe request not sent", "peer", s.peer.id, "err", err)
		return false
	}
	return true
}

// stop detaches the source from the tracks; its reading goroutines end when its connection
// closes.
func (s *source) stop() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.current.Store(false)
	r := s.peer.relay
	r.video.stop(s)
	r.audio.stop(s)
}
