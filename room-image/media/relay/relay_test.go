package relay

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/control"
	"streamroom.dev/media/internal/harness"
)

// A hundred viewers join at once: every one gets the broadcast without loss, and the source is
// asked for key frames at most about once per interval however many viewers ask.
func TestHundredViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("100 peer connections")
	}
	e := newEnv(t, Config{KeyframeInterval: time.Second}, nil)
	pub := e.publish(1_000_000)
	time.Sleep(500 * time.Millisecond)
	relayBefore := e.relayStats()
	plisBefore := e.publisherStats(pub).KeyframeRequests
	joinStart := time.Now()

	e.addViewers(0, 100, 16)
	e.waitVideo()
	joinTime := time.Since(joinStart)

	relayAfter := e.relayStats()
	plis := e.publisherStats(pub).KeyframeRequests - plisBefore
	out := relayAfter.KeyframeRequestsOut - relayBefore.KeyframeRequestsOut
	allowed := uint64(joinTime/time.Second) + 2
	t.Logf("join of 100 took %s: %d viewer PLIs in, %d PLIs to the source (publisher saw %d)",
		joinTime.Round(time.Millisecond), relayAfter.KeyframeRequestsIn-relayBefore.KeyframeRequestsIn, out, plis)
	if relayAfter.KeyframeRequestsIn-relayBefore.KeyframeRequestsIn < 100 {
		t.Errorf("keyframeRequestsIn grew by %d, want every viewer's start PLI (100)", relayAfter.KeyframeRequestsIn-relayBefore.KeyframeRequestsIn)
	}
	if out > allowed || plis > allowed {
		t.Errorf("%d key frame requests to the source (publisher saw %d) in %s, want at most %d", out, plis, joinTime, allowed)
	}
	if relayAfter.Viewers != 100 {
		t.Errorf("relay reports %d viewers, want 100", relayAfter.Viewers)
	}

	if err := e.h.Swarm.Call(e.ctx, "reset", nil, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	e.stopPublisher(pub)
	st := e.swarmStats()
	if st.Connected != 100 {
		t.Fatalf("%d viewers connected, want 100", st.Connected)
	}
	for _, v := range st.PerViewer {
		if v.Packets < 100 || v.FirstVideoAt == 0 {
			t.Errorf("viewer %s: %d packets, first video at %d", v.ID, v.Packets, v.FirstVideoAt)
		}
	}
	if st.Aggregate.Lost != 0 {
		t.Errorf("viewers lost %d packets (%.3f%%), want 0", st.Aggregate.Lost, st.Aggregate.LossPct)
	}
	t.Logf("100 viewers: %d packets, delay p50 %.1f ms p99 %.1f ms", st.Aggregate.Packets, st.Aggregate.DelayP50Ms, st.Aggregate.DelayP99Ms)
}

// A new publish replaces the source; viewers keep their connection, and their sequence numbers
// stay continuous (no loss counted across the change) while video resumes.
func TestSourceReplaced(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	first := e.publish(500_000)
	e.addViewers(0, 5, 5)
	e.waitVideo()
	if err := e.h.Swarm.Call(e.ctx, "reset", nil, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	before := e.swarmStats()

	second := e.publish(500_000)
	if err := e.h.WaitState(e.ctx, harness.RelaySide, first, "closed"); err != nil {
		t.Fatalf("the first source was not closed: %v", err)
	}
	time.Sleep(1500 * time.Millisecond)
	st := e.relayStats()
	if !st.SourceConnected || st.Viewers != 5 {
		t.Fatalf("after the change: sourceConnected %v, %d viewers", st.SourceConnected, st.Viewers)
	}
	e.stopPublisher(second)
	after := e.swarmStats()
	for i, v := range after.PerViewer {
		grown := v.Packets - before.PerViewer[i].Packets
		// 1.5 s of the second source: about 70 video and 75 audio packets.
		if grown < 100 {
			t.Errorf("viewer %s: %d packets since the change, want the new source's", v.ID, grown)
		}
		if v.Lost != 0 {
			t.Errorf("viewer %s: %d packets lost across the change, want a continuous numbering", v.ID, v.Lost)
		}
		if e.h.State(harness.SwarmSide, v.ID) != "connected" {
			t.Errorf("viewer %s: state %s", v.ID, e.h.State(harness.SwarmSide, v.ID))
		}
	}
}

// Packets the relay fails to deliver to one viewer are retransmitted from the shared cache
// when that viewer NACKs them.
func TestNackAnsweredFromCache(t *testing.T) {
	var dropped atomic.Uint64
	e := newEnv(t, Config{}, func(r *Relay) {
		var n atomic.Uint64
		r.dropHook = func(peer string, p *packet) bool {
			if peer != "v-0" || p.kind != kindVideo || n.Add(1)%20 != 0 {
				return false
			}
			dropped.Add(1)
			return true
		}
	})
	pub := e.publish(1_000_000)
	e.addViewers(0, 2, 2)
	e.waitVideo()
	time.Sleep(2 * time.Second)
	sourceNacks := e.publisherStats(pub).Nacks
	e.stopPublisher(pub)

	st := e.relayStats()
	sw := e.swarmStats()
	t.Logf("dropped %d, nacksIn %d, retransmits %d", dropped.Load(), st.NacksIn, st.Retransmits)
	if dropped.Load() < 5 {
		t.Fatalf("only %d packets dropped by the hook", dropped.Load())
	}
	if st.NacksIn < dropped.Load() || st.Retransmits < dropped.Load() {
		t.Errorf("nacksIn %d, retransmits %d, want at least the %d dropped", st.NacksIn, st.Retransmits, dropped.Load())
	}
	for _, v := range sw.PerViewer {
		if v.Lost != 0 {
			t.Errorf("viewer %s lost %d packets, want them retransmitted", v.ID, v.Lost)
		}
	}
	if sourceNacks != 0 {
		t.Errorf("the source got %d NACKs: viewers' NACKs must be answered by the relay", sourceNacks)
	}
}

// A source sending 50 Mbit/s is capped: the answer says so, the excess is dropped and the relay
// keeps answering quickly.
func TestFloodingSourceIsCapped(t *testing.T) {
	e := newEnv(t, Config{MaxPublishBitrate: 2_000_000}, nil)
	_, answer := e.publishAnswer(50_000_000)
	if !strings.Contains(answer, "b=TIAS:1800000") {
		t.Errorf("the answer has no b=TIAS:1800000 for video:\n%s", answer)
	}
	e.addViewers(0, 1, 1)
	time.Sleep(2500 * time.Millisecond)

	var slowest time.Duration
	var st Stats
	for range 5 {
		start := time.Now()
		st = e.relayStats()
		slowest = max(slowest, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("in %d bit/s, out %d bit/s, dropped %d of %d, slowest stats answer %s", st.BitrateIn, st.BitrateOut, st.PacketsDropped, st.PacketsIn, slowest)
	if st.PacketsDropped == 0 {
		t.Error("nothing dropped from a 50 Mbit/s source capped at 2 Mbit/s")
	}
	if st.BitrateOut > 3_000_000 {
		t.Errorf("bitrateOut %d to one viewer, want about the 2 Mbit/s cap", st.BitrateOut)
	}
	if slowest > 500*time.Millisecond {
		t.Errorf("stats took %s under the flood", slowest)
	}
}

// Bad requests are answered with the right error and the relay goes on.
func TestBadInput(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	call := func(method string, params any) error {
		return e.h.Relay.Call(e.ctx, method, params, nil)
	}
	wantCode := func(t *testing.T, err error, code string) {
		t.Helper()
		var perr *control.Error
		if !errors.As(err, &perr) || perr.Code != code {
			t.Fatalf("got %v, want error code %s", err, code)
		}
	}

	t.Run("malformed SDP", func(t *testing.T) {
		wantCode(t, call("publish", map[string]any{"peer": "b", "sdp": "this is not SDP"}), control.CodeBadSDP)
		wantCode(t, call("publish", map[string]any{"peer": "b", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}), control.CodeBadSDP)
	})
	t.Run("fifty tracks", func(t *testing.T) {
		offer := offerWithTracks(t, 25, 25)
		start := time.Now()
		wantCode(t, call("publish", map[string]any{"peer": "b", "sdp": offer}), control.CodeTooManyTracks)
		if d := time.Since(start); d > time.Second {
			t.Errorf("refusing took %s", d)
		}
	})
	t.Run("unknown peer", func(t *testing.T) {
		wantCode(t, call("answer", map[string]any{"peer": "nobody", "sdp": "v=0"}), control.CodeUnknownPeer)
		wantCode(t, call("candidate", map[string]any{"peer": "nobody", "candidate": map[string]any{"candidate": ""}}), control.CodeUnknownPeer)
		wantCode(t, call("close", map[string]any{"peer": "nobody"}), control.CodeUnknownPeer)
	})
	t.Run("missing params", func(t *testing.T) {
		wantCode(t, call("publish", map[string]any{"peer": "b"}), control.CodeBadRequest)
		wantCode(t, call("subscribe", nil), control.CodeBadRequest)
		wantCode(t, call("nope", nil), control.CodeBadRequest)
	})
	t.Run("bad answer", func(t *testing.T) {
		if err := call("subscribe", map[string]any{"peer": "x"}); err != nil {
			t.Fatal(err)
		}
		wantCode(t, call("answer", map[string]any{"peer": "x", "sdp": "garbage"}), control.CodeBadSDP)
		if err := call("close", map[string]any{"peer": "x"}); err != nil {
			t.Fatal(err)
		}
	})
	if st := e.relayStats(); st.Peers != 0 {
		t.Errorf("%d peers left after refused requests", st.Peers)
	}
}

// offerWithTracks is a browser-like offer with the given numbers of audio and video sections.
func offerWithTracks(t *testing.T, audio, video int) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	for i := range audio + video {
		kind := webrtc.RTPCodecTypeAudio
		if i >= audio {
			kind = webrtc.RTPCodecTypeVideo
		}
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// Peers that never connect are closed after the connect timeout with a failed state: a viewer
// that never answers, and one whose ICE never gets a candidate.
func TestConnectTimeout(t *testing.T) {
	e := newEnv(t, Config{ConnectTimeout: time.Second}, nil)
	if err := e.h.Relay.Call(e.ctx, "subscribe", map[string]any{"peer": "silent"}, nil); err != nil {
		t.Fatal(err)
	}
	var offer struct{ SDP string }
	if err := e.h.Relay.Call(e.ctx, "subscribe", map[string]any{"peer": "unreachable"}, &offer); err != nil {
		t.Fatal(err)
	}
	// The swarm answers, but no candidate is handed over in either direction.
	var answer struct{ SDP string }
	if err := e.h.Swarm.Call(e.ctx, "view", map[string]any{"id": "unreachable", "sdp": offer.SDP}, &answer); err != nil {
		t.Fatal(err)
	}
	if err := e.h.Relay.Call(e.ctx, "answer", map[string]any{"peer": "unreachable", "sdp": answer.SDP}, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"silent", "unreachable"} {
		if err := e.h.WaitState(e.ctx, harness.RelaySide, id, "failed"); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.relayStats(); st.Peers != 0 {
		t.Errorf("%d peers left after the timeout", st.Peers)
	}
}

// --max-peers bounds viewer connections.
func TestMaxPeers(t *testing.T) {
	e := newEnv(t, Config{MaxPeers: 2}, nil)
	for _, id := range []string{"a", "b"} {
		if err := e.h.Relay.Call(e.ctx, "subscribe", map[string]any{"peer": id}, nil); err != nil {
			t.Fatal(err)
		}
	}
	err := e.h.Relay.Call(e.ctx, "subscribe", map[string]any{"peer": "c"}, nil)
	var perr *control.Error
	if !errors.As(err, &perr) || perr.Code != control.CodeTooManyPeers {
		t.Fatalf("third subscribe: %v, want too_many_peers", err)
	}
}
