package swarm

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/probe"
	"streamroom.dev/media/internal/vp8"
)

const (
	maxVideoPayload = 1100
	audioInterval   = 20 * time.Millisecond
	audioPayload    = 80 // about 32 kbit/s, like Opus voice
	paceTick        = 5 * time.Millisecond
	paceFactor      = 2.5 // like a browser's pacer: send at up to 2.5x the target bitrate
)

// publisher sends a synthetic broadcast: VP8-like video frames split into packets of at most
// maxVideoPayload bytes, each ending with a probe trailer (send time, counter), a key frame
// first and after every PLI/FIR; and 50 Opus-like audio packets a second.
type publisher struct {
	swarm        *Swarm
	peer         *peer
	video, audio *webrtc.TrackLocalStaticRTP
	bitrate, fps int

	keyframeWanted atomic.Bool
	stopCh         chan struct{}
	stopOnce       sync.Once

	packets, bytes, keyframes atomic.Uint64
	keyframeRequests, nacks   atomic.Uint64
}

// PublisherStats is a publisher's entry in the stats result.
type PublisherStats struct {
	Peer             string `json:"peer"`
	Connected        bool   `json:"connected"`
	Packets          uint64 `json:"packets"`
	Bytes            uint64 `json:"bytes"`
	Keyframes        uint64 `json:"keyframes"`
	KeyframeRequests uint64 `json:"keyframeRequests"` // PLI and FIR received
	Nacks            uint64 `json:"nacks"`            // packets NACKed
}

func newPublisher(s *Swarm, p *peer, bitrate, fps int) (*publisher, error) {
	pub := &publisher{swarm: s, peer: p, bitrate: bitrate, fps: fps, stopCh: make(chan struct{})}
	pub.keyframeWanted.Store(true)
	var err error
	pub.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "synthetic")
	if err != nil {
		return nil, err
	}
	pub.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "synthetic")
	if err != nil {
		return nil, err
	}
	for _, track := range []*webrtc.TrackLocalStaticRTP{pub.video, pub.audio} {
		tr, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		sender := tr.Sender()
		s.goTracked(func() { pub.readRTCP(sender) })
	}
	return pub, nil
}

func (pub *publisher) stop() { pub.stopOnce.Do(func() { close(pub.stopCh) }) }

func (pub *publisher) stats() PublisherStats {
	return PublisherStats{
		Peer:             pub.peer.id,
		Connected:        pub.peer.isConnected(),
		Packets:          pub.packets.Load(),
		Bytes:            pub.bytes.Load(),
		Keyframes:        pub.keyframes.Load(),
		KeyframeRequests: pub.keyframeRequests.Load(),
		Nacks:            pub.nacks.Load(),
	}
}

// readRTCP takes key frame requests and counts NACKs (pion's responder answers them).
func (pub *publisher) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pkt := range pkts {
			switch p := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				pub.keyframeRequests.Add(1)
				pub.keyframeWanted.Store(true)
			case *rtcp.TransportLayerNack:
				for _, pair := range p.Nacks {
					pub.nacks.Add(uint64(len(pair.PacketList())))
				}
			}
		}
	}
}

// run sends until stopped or the connection ends, pacing video like a browser.
func (pub *publisher) run() {
	frameInterval := time.Second / time.Duration(pub.fps)
	frameBytes := max(pub.bitrate/8/pub.fps, vp8.DescriptorSize+10+probe.Size)
	paceRate := float64(pub.bitrate) / 8 * paceFactor // bytes per second

	video := rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}
	audio := rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}
	audioBuf := make([]byte, audioPayload)
	audioBuf[0] = 0xfc // Opus TOC: CELT fullband 20 ms, one frame
	var (
		queue     []*rtp.Packet
		counter   uint64
		pictureID = uint16(rand.Uint32())
		budget    float64
		now       = time.Now()
		last      = now
		nextFrame = now
		nextAudio = now
	)
	ticker := time.NewTicker(paceTick)
	defer ticker.Stop()
	for {
		for !now.Before(nextFrame) {
			keyframe := pub.keyframeWanted.Swap(false)
			if keyframe {
				pub.keyframes.Add(1)
			}
			queue = append(queue, videoFrame(&video, frameBytes, keyframe, pictureID&0x7fff)...)
			video.Timestamp += 90000 / uint32(pub.fps)
			pictureID++
			nextFrame = nextFrame.Add(frameInterval)
			if now.Sub(nextFrame) > time.Second { // fell far behind (stopped process): skip
				nextFrame = now.Add(frameInterval)
			}
		}
		for !now.Before(nextAudio) {
			audio.SequenceNumber++
			audio.Timestamp += 960
			if !pub.write(pub.audio, &rtp.Packet{Header: audio, Payload: audioBuf}) {
				return
			}
			nextAudio = nextAudio.Add(audioInterval)
			if now.Sub(nextAudio) > time.Second {
				nextAudio = now.Add(audioInterval)
			}
		}
		budget = min(budget+now.Sub(last).Seconds()*paceRate, paceRate*paceTick.Seconds()*4)
		last = now
		for len(queue) > 0 && budget > 0 {
			pkt := queue[0]
			queue[0] = nil
			queue = queue[1:]
			counter++
			probe.Put(pkt.Payload, time.Now(), counter)
			if !pub.write(pub.video, pkt) {
				return
			}
			budget -= float64(len(pkt.Payload))
		}
		if len(queue) == 0 {
			budget = min(budget, 0)
		}
		select {
		case <-pub.stopCh:
			return
		case now = <-ticker.C:
		}
	}
}

func (pub *publisher) write(track *webrtc.TrackLocalStaticRTP, pkt *rtp.Packet) bool {
	if err := track.WriteRTP(pkt); err != nil {
		pub.swarm.log.Debug("publisher write", "peer", pub.peer.id, "err", err)
		return false
	}
	pub.packets.Add(1)
	pub.bytes.Add(uint64(pkt.MarshalSize()))
	return true
}

// videoFrame splits one synthetic frame of size bytes into packets, advancing h's sequence
// number. The probe trailer is filled in when each packet is sent.
func videoFrame(h *rtp.Header, size int, keyframe bool, pictureID uint16) []*rtp.Packet {
	n := (size + maxVideoPayload - 1) / maxVideoPayload
	per := size / n
	pkts := make([]*rtp.Packet, 0, n)
	for i := range n {
		payloadSize := per
		if i == n-1 {
			payloadSize = size - per*(n-1)
		}
		payload := make([]byte, max(payloadSize, vp8.DescriptorSize+10+probe.Size))
		vp8.Descriptor(payload, i == 0, pictureID)
		if i == 0 {
			vp8.FrameHeader(payload[vp8.DescriptorSize:], keyframe, uint32(size))
		}
		h.SequenceNumber++
		hdr := *h
		hdr.Marker = i == n-1
		pkts = append(pkts, &rtp.Packet{Header: hdr, Payload: payload})
	}
	return pkts
}
