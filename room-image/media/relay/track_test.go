package relay

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"streamroom.dev/media/internal/vp8"
)

// trackFixture is a track with one attached viewer whose queue the test reads.
type trackFixture struct {
	t      *testing.T
	relay  *Relay
	track  *track
	viewer *viewer
}

func newTrackFixture(t *testing.T, k kind) *trackFixture {
	r := &Relay{log: testLogger(), cfg: Config{MaxPublishBitrate: 100_000_000}}
	r.keyframes = newKeyframer(time.Second, func() bool { return false })
	tr := newTrack(r, k)
	v := &viewer{peer: &peer{id: "v", relay: r}, queue: make(chan item, 100_000)}
	tr.attach(v)
	return &trackFixture{t: t, relay: r, track: tr, viewer: v}
}

func (f *trackFixture) newSource() *source {
	return &source{peer: &peer{id: "src", relay: f.relay}, bucket: newTokenBucket(f.relay.cfg.MaxPublishBitrate, time.Second)}
}

func (f *trackFixture) send(src *source, ssrc uint32, seq uint16, ts uint32, payload []byte) {
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts}, Payload: payload}
	f.track.ingest(streamKey{src: src, ssrc: ssrc}, pkt, 12+len(payload))
}

// out returns the sequence numbers and timestamps forwarded since the last call.
func (f *trackFixture) out() (seqs []uint16, tss []uint32) {
	for {
		select {
		case it := <-f.viewer.queue:
			seqs = append(seqs, it.pkt.header.SequenceNumber)
			tss = append(tss, it.pkt.header.Timestamp)
		default:
			return seqs, tss
		}
	}
}

func TestTrackRenumbersAcrossSources(t *testing.T) {
	f := newTrackFixture(t, kindAudio)
	a := f.newSource()
	media := []byte{1, 2, 3}
	// Around the wrap: 65533 is padding only (dropped, numbering closes up), 1 comes late.
	for _, seq := range []uint16{65530, 65531, 65532, 65533, 65534, 65535, 0, 2, 1, 3} {
		payload := media
		if seq == 65533 {
			payload = nil
		}
		f.send(a, 7, seq, uint32(seq)*960, payload)
	}
	seqs, _ := f.out()
	base := seqs[0]
	want := []uint16{0, 1, 2, 3, 4, 5, 7, 6, 8} // offsets from the first
	if len(seqs) != len(want) {
		t.Fatalf("forwarded %v", seqs)
	}
	for i, w := range want {
		if seqs[i]-base != w {
			t.Fatalf("forwarded %v, want base+%v", seqs, want)
		}
	}

	// A second source continues the numbering, and the timestamps move forward.
	f.send(a, 7, 4, 4*960, media)
	_, tssA := f.out()
	time.Sleep(20 * time.Millisecond)
	b := f.newSource()
	f.send(b, 9, 30000, 123, media)
	f.send(b, 9, 30001, 123+960, media)
	seqs, tss := f.out()
	if len(seqs) != 2 || seqs[0] != base+10 || seqs[1] != base+11 {
		t.Fatalf("second source forwarded as %v, want %d, %d", seqs, base+10, base+11)
	}
	if d := int32(tss[0] - tssA[0]); d < 960 || d > 48000 {
		t.Errorf("timestamp advanced by %d across the change, want about 20 ms (960)", d)
	}
	if tss[1]-tss[0] != 960 {
		t.Errorf("timestamps within the new source: %v", tss)
	}
}

func TestTrackLatePacketsAfterLongRuns(t *testing.T) {
	f := newTrackFixture(t, kindAudio)
	src := f.newSource()
	for seq := range uint16(40000) {
		if seq == 39990 {
			continue // lost, retransmitted below
		}
		f.send(src, 1, seq, uint32(seq)*960, []byte{1})
	}
	f.out()
	f.send(src, 1, 39990, 39990*960, []byte{1})
	f.send(src, 1, 39991, 39991*960, []byte{1}) // duplicate
	seqs, _ := f.out()
	if len(seqs) != 1 {
		t.Fatalf("late packet forwarded %d times, want once", len(seqs))
	}
	if lost := f.relay.counters.lostIn.Load(); lost != 0 {
		t.Errorf("lostIn %d after the retransmission, want 0", lost)
	}
}

func TestTrackVideoStartsAtKeyframe(t *testing.T) {
	f := newTrackFixture(t, kindVideo)
	f.viewer.needKeyframe = true
	src := f.newSource()
	delta := make([]byte, 20)
	vp8.Descriptor(delta, true, 1)
	vp8.FrameHeader(delta[vp8.DescriptorSize:], false, 10)
	key := make([]byte, 20)
	vp8.Descriptor(key, true, 2)
	vp8.FrameHeader(key[vp8.DescriptorSize:], true, 10)

	f.send(src, 1, 100, 0, delta)
	f.send(src, 1, 101, 3000, key)
	f.send(src, 1, 102, 6000, delta)
	seqs, _ := f.out()
	if len(seqs) != 2 || seqs[1] != seqs[0]+1 {
		t.Fatalf("forwarded %v, want the key frame and what follows, numbered in a row", seqs)
	}
}
