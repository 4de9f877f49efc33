package relay

import (
	"strings"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// viewerQueueSize bounds a viewer's send queue (about a second of 4 Mbit/s video): a viewer whose
// connection cannot keep up loses packets from its own queue only.
const viewerQueueSize = 512

// streamID and the track IDs are what viewers see as the MediaStream and its tracks.
const streamID = "streamroom"

type senderReport struct {
	kind kind
	ntp  uint64
	rtp  uint32
}

// item is one entry of a viewer's queue: a packet, or a sender report to complete.
type item struct {
	pkt        *packet
	sr         *senderReport
	retransmit bool
}

// binding is what pion negotiated for one of the viewer's tracks.
type binding struct {
	ssrc        uint32
	payloadType uint8
	stream      webrtc.TrackLocalWriter
}

// viewer sends the room's tracks to one viewer from its own queue and writer goroutine, and
// answers its RTCP: NACKs from the shared cache, PLI/FIR with a (coalesced) key frame request.
type viewer struct {
	peer  *peer
	queue chan item
	done  chan struct{}

	mu       sync.Mutex
	bindings [2]binding
	started  bool
	stopped  bool

	// needKeyframe is guarded by the video track's mu: the viewer gets video from a key frame on.
	needKeyframe bool

	// Written by the writer goroutine only.
	sentPackets [2]uint32
	sentOctets  [2]uint32
}

func newViewer(p *peer) (*viewer, error) {
	v := &viewer{
		peer:  p,
		queue: make(chan item, viewerQueueSize),
		done:  make(chan struct{}),
	}
	p.viewer = v
	r := p.relay
	for _, k := range []kind{kindVideo, kindAudio} {
		sender, err := p.pc.AddTransceiverFromTrack(&viewerTrack{viewer: v, kind: k},
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		r.wg.Add(1)
		go v.readRTCP(sender.Sender(), k)
	}
	return v, nil
}

// start attaches the connected viewer to the tracks and asks for a key frame.
func (v *viewer) start() {
	r := v.peer.relay
	v.mu.Lock()
	if v.started || v.stopped {
		v.mu.Unlock()
		return
	}
	v.started = true
	bindings := v.bindings
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		v.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	v.mu.Unlock()

	go v.write(bindings)
	r.video.mu.Lock()
	v.needKeyframe = true
	r.video.mu.Unlock()
	r.video.attach(v)
	r.audio.attach(v)
	r.keyframes.request()
}

// stop detaches the viewer and ends its writer.
func (v *viewer) stop() {
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		return
	}
	v.stopped = true
	v.mu.Unlock()
	r := v.peer.relay
	r.video.detach(v)
	r.audio.detach(v)
	close(v.done)
}

// enqueue queues it without blocking, or drops it when the queue is full.
func (v *viewer) enqueue(it item) {
	select {
	case v.queue <- it:
	default:
		v.peer.relay.counters.packetsDropped.Add(1)
	}
}

func (v *viewer) write(bindings [2]binding) {
	r := v.peer.relay
	defer r.wg.Done()
	for {
		select {
		case <-v.done:
			return
		case it := <-v.queue:
			v.writeItem(&bindings, it)
			// Write what queued up meanwhile without going back to select.
			for n := len(v.queue); n > 0; n-- {
				v.writeItem(&bindings, <-v.queue)
			}
		}
	}
}

func (v *viewer) writeItem(bindings *[2]binding, it item) {
	if it.sr != nil {
		v.writeSenderReport(&bindings[it.sr.kind], it.sr)
		return
	}
	v.writePacket(&bindings[it.pkt.kind], it)
}

func (v *viewer) writePacket(b *binding, it item) {
	if b.stream == nil {
		return
	}
	r := v.peer.relay
	p := it.pkt
	if !it.retransmit && r.dropHook != nil && r.dropHook(v.peer.id, p) {
		return
	}
	h := p.header
	h.SSRC = b.ssrc
	h.PayloadType = b.payloadType
	n, err := b.stream.WriteRTP(&h, p.payload)
	if err != nil {
		return
	}
	r.counters.packetsOut.Add(1)
	r.counters.bytesOut.Add(uint64(n))
	if it.retransmit {
		r.counters.retransmits.Add(1)
	}
	v.sentPackets[p.kind]++
	v.sentOctets[p.kind] += uint32(len(p.payload))
}

func (v *viewer) writeSenderReport(b *binding, sr *senderReport) {
	if b.stream == nil {
		return
	}
	report := &rtcp.SenderReport{
		SSRC:        b.ssrc,
		NTPTime:     sr.ntp,
		RTPTime:     sr.rtp,
		PacketCount: v.sentPackets[sr.kind],
		OctetCount:  v.sentOctets[sr.kind],
	}
	if err := v.peer.pc.WriteRTCP([]rtcp.Packet{report}); err != nil {
		v.peer.relay.log.Debug("sender report not sent", "peer", v.peer.id, "err", err)
	}
}

// readRTCP answers the viewer's feedback for one of its tracks until the connection closes.
func (v *viewer) readRTCP(sender *webrtc.RTPSender, k kind) {
	r := v.peer.relay
	defer r.wg.Done()
	buf := make([]byte, 1500)
	t := r.trackOf(k)
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
				if k == kindVideo {
					r.counters.keyframeRequestsIn.Add(1)
					r.keyframes.request()
				}
			case *rtcp.TransportLayerNack:
				for _, pair := range p.Nacks {
					for _, seq := range pair.PacketList() {
						r.counters.nacksIn.Add(1)
						if cached := t.cache.get(seq); cached != nil {
							v.enqueue(item{pkt: cached, retransmit: true})
						}
					}
				}
			}
		}
	}
}

// viewerTrack is the webrtc.TrackLocal of one of a viewer's senders: binding records what pion
// negotiated, and the viewer's writer does the sending.
type viewerTrack struct {
	viewer *viewer
	kind   kind
}

func (t *viewerTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	want := videoCodec.MimeType
	if t.kind == kindAudio {
		want = audioCodec.MimeType
	}
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, want) {
			t.viewer.mu.Lock()
			t.viewer.bindings[t.kind] = binding{
				ssrc:        uint32(ctx.SSRC()),
				payloadType: uint8(c.PayloadType),
				stream:      ctx.WriteStream(),
			}
			t.viewer.mu.Unlock()
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (t *viewerTrack) Unbind(webrtc.TrackLocalContext) error {
	t.viewer.mu.Lock()
	t.viewer.bindings[t.kind] = binding{}
	t.viewer.mu.Unlock()
	return nil
}

func (t *viewerTrack) ID() string       { return t.kind.String() }
func (t *viewerTrack) RID() string      { return "" }
func (t *viewerTrack) StreamID() string { return streamID }
func (t *viewerTrack) Kind() webrtc.RTPCodecType {
	if t.kind == kindVideo {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}
