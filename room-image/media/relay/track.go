package relay

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"streamroom.dev/media/internal/vp8"
)

type kind int

const (
	kindVideo kind = iota
	kindAudio
)

func (k kind) String() string {
	if k == kindVideo {
		return "video"
	}
	return "audio"
}

// packet is one forwarded RTP packet, shared read-only by every viewer's queue and the
// retransmission cache. Its header is in the viewers' numbering; SSRC and payload type are set
// per viewer when written.
type packet struct {
	header   rtp.Header
	payload  []byte
	kind     kind
	keyframe bool  // first packet of a VP8 key frame
	arrival  int64 // monotonic nanoseconds, for the cache's age limit
}

// wireSize is the packet's RTP size, for the bitrate counters.
func (p *packet) wireSize() int { return p.header.MarshalSize() + len(p.payload) }

// streamKey identifies one RTP stream of one source: sequence numbers and timestamps are
// continuous within a stream only.
type streamKey struct {
	src  *source
	ssrc uint32
}

// historySize is how far back (in the source's sequence numbers) a late packet, typically a
// retransmission the relay asked for, is still mapped into the viewers' numbering.
const historySize = 512

// track turns the packets of the room's current source stream of one kind into one continuous
// stream for the viewers: sequence numbers and timestamps are rewritten here, once, so that a
// new source (or a new SSRC) continues where the previous one stopped. Video from a new stream
// starts at a key frame. Padding-only packets (bandwidth probes) are dropped and the numbering
// closes up over them. Every forwarded packet goes into the shared retransmission cache and to
// every attached viewer's queue.
type track struct {
	relay     *Relay
	kind      kind
	clockRate uint32
	cache     *packetCache

	mu        sync.Mutex
	stream    streamKey
	active    bool // a mapping for stream is established
	highestIn uint16
	span      int    // how many sequence numbers up to highestIn are mapped, at most historySize
	seqOffset uint16 // viewers' sequence number = source's + seqOffset
	tsOffset  uint32 // viewers' timestamp = source's + tsOffset
	history   [historySize]uint16
	haveOut   bool
	lastSeq   uint16 // the latest viewers' sequence number and timestamp
	lastTS    uint32
	lastAt    time.Time

	sinksMu sync.Mutex
	sinks   atomic.Pointer[[]*viewer]
}

func newTrack(r *Relay, k kind) *track {
	t := &track{relay: r, kind: k}
	if k == kindVideo {
		t.clockRate = videoCodec.ClockRate
		t.cache = newPacketCache(1024)
	} else {
		t.clockRate = audioCodec.ClockRate
		t.cache = newPacketCache(128)
	}
	t.sinks.Store(&[]*viewer{})
	return t
}

// attach adds a viewer: it gets every packet from now on (video from the next key frame).
func (t *track) attach(v *viewer) {
	t.sinksMu.Lock()
	defer t.sinksMu.Unlock()
	old := *t.sinks.Load()
	next := make([]*viewer, len(old), len(old)+1)
	copy(next, old)
	next = append(next, v)
	t.sinks.Store(&next)
}

// detach removes a viewer.
func (t *track) detach(v *viewer) {
	t.sinksMu.Lock()
	defer t.sinksMu.Unlock()
	old := *t.sinks.Load()
	next := make([]*viewer, 0, len(old))
	for _, s := range old {
		if s != v {
			next = append(next, s)
		}
	}
	t.sinks.Store(&next)
}

// ingest forwards one packet of the source stream key, of size bytes on the wire, within the
// source's bitrate cap. It is called by the stream's reading goroutine; pkt's payload is copied.
// A packet refused by the cap keeps its place in the numbering: viewers see it as lost.
func (t *track) ingest(key streamKey, pkt *rtp.Packet, size int) {
	counters := &t.relay.counters
	keyframe := t.kind == kindVideo && vp8.IsKeyframeStart(pkt.Payload)
	padding := len(pkt.Payload) == 0
	now := time.Now()

	t.mu.Lock()
	defer t.mu.Unlock()
	if key != t.stream || !t.active {
		if t.kind == kindVideo && !keyframe {
			// Viewers can decode nothing of a new stream before its first key frame.
			t.relay.keyframes.request()
			return
		}
		if padding {
			return
		}
		t.rebase(key, pkt, now)
	}

	seq := pkt.SequenceNumber
	var offset uint16
	if d := int16(seq - t.highestIn); d > 0 {
		if gap := int(d) - 1; gap > 0 {
			counters.lostIn.Add(uint64(gap))
			for s, n := t.highestIn+1, 0; s != seq && n < historySize; s, n = s+1, n+1 {
				t.history[s%historySize] = t.seqOffset
			}
		}
		t.highestIn = seq
		t.span = min(t.span+int(d), historySize)
		t.history[seq%historySize] = t.seqOffset
		if padding {
			// The next packet takes this one's place in the viewers' numbering.
			t.seqOffset--
			return
		}
		offset = t.seqOffset
	} else {
		// Late: reordered, or a retransmission the relay asked for.
		if -int(d) >= t.span || padding {
			return
		}
		offset = t.history[seq%historySize]
		if t.cache.get(seq+offset) != nil {
			return // duplicate
		}
		decrementIfPositive(&counters.lostIn)
	}
	if !key.src.bucket.allow(size) {
		counters.packetsDropped.Add(1)
		return
	}

	p := &packet{
		header:   pkt.Header,
		payload:  append([]byte(nil), pkt.Payload...),
		kind:     t.kind,
		keyframe: keyframe,
		arrival:  monotonicNow(),
	}
	p.header.SequenceNumber = seq + offset
	p.header.Timestamp = pkt.Timestamp + t.tsOffset
	// Header extensions are negotiated per connection: the source's IDs mean nothing to viewers.
	p.header.Extension = false
	p.header.ExtensionProfile = 0
	p.header.Extensions = nil
	p.header.Padding = false
	p.header.PaddingSize = 0
	if int16(p.header.SequenceNumber-t.lastSeq) > 0 || !t.haveOut {
		t.lastSeq, t.lastTS, t.lastAt, t.haveOut = p.header.SequenceNumber, p.header.Timestamp, now, true
	}
	t.cache.put(p)
	if keyframe {
		t.relay.keyframes.keyframeSeen()
	}
	t.fanOut(p)
}

// rebase starts a new mapping: the stream's first packet follows the viewers' latest one, and
// its timestamp advances by the wall-clock time since then.
func (t *track) rebase(key streamKey, pkt *rtp.Packet, now time.Time) {
	outSeq := uint16(rand.Uint32())
	outTS := rand.Uint32()
	if t.haveOut {
		outSeq = t.lastSeq + 1
		ticks := uint32(now.Sub(t.lastAt).Seconds() * float64(t.clockRate))
		outTS = t.lastTS + max(ticks, 1)
	}
	t.stream = key
	t.active = true
	t.highestIn = pkt.SequenceNumber - 1
	t.span = 0
	t.seqOffset = outSeq - pkt.SequenceNumber
	t.tsOffset = outTS - pkt.Timestamp
	t.relay.log.Info("forwarding new stream", "kind", t.kind.String(), "ssrc", key.ssrc, "source", key.src.peer.id)
}

// fanOut queues p to every viewer; called with t.mu held so that queues keep the order. A viewer
// still waiting for its first key frame keeps asking for one (coalesced by the keyframer), so a
// key frame that passed just before it joined, or a lost request, cannot leave it without video.
func (t *track) fanOut(p *packet) {
	waiting := false
	for _, v := range *t.sinks.Load() {
		if t.kind == kindVideo && v.needKeyframe {
			if !p.keyframe {
				waiting = true
				continue
			}
			v.needKeyframe = false
		}
		v.enqueue(item{pkt: p})
	}
	if waiting {
		t.relay.keyframes.request()
	}
}

// senderReport maps a source stream's sender report into the viewers' timeline and queues it to
// every viewer, which completes it with its own packet and octet counts.
func (t *track) senderReport(key streamKey, ntp uint64, rtpTime uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if key != t.stream || !t.active {
		return
	}
	sr := &senderReport{kind: t.kind, ntp: ntp, rtp: rtpTime + t.tsOffset}
	for _, v := range *t.sinks.Load() {
		v.enqueue(item{sr: sr})
	}
}

// stop ends the mapping of a source that went away: its next packets, should any arrive, and
// the next source's start a new mapping.
func (t *track) stop(src *source) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stream.src == src {
		t.active = false
	}
}

func decrementIfPositive(c *atomic.Uint64) {
	for {
		v := c.Load()
		if v == 0 || c.CompareAndSwap(v, v-1) {
			return
		}
	}
}

var monoStart = time.Now()

func monotonicNow() int64 { return int64(time.Since(monoStart)) }

// packetCache keeps the latest packets of a track for retransmissions: one ring shared by all
// viewers, indexed by the viewers' sequence number.
type packetCache struct {
	slots []atomic.Pointer[packet]
	mask  uint16
}

// cacheMaxAge bounds how old a retransmitted packet may be: older ones are too late to help.
const cacheMaxAge = 2 * time.Second

func newPacketCache(size int) *packetCache {
	return &packetCache{slots: make([]atomic.Pointer[packet], size), mask: uint16(size - 1)}
}

func (c *packetCache) put(p *packet) { c.slots[p.header.SequenceNumber&c.mask].Store(p) }

func (c *packetCache) get(seq uint16) *packet {
	p := c.slots[seq&c.mask].Load()
	if p == nil || p.header.SequenceNumber != seq || monotonicNow()-p.arrival > int64(cacheMaxAge) {
		return nil
	}
	return p
}
