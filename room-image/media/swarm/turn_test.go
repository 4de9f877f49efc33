package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"streamroom.dev/media/internal/control"
	"streamroom.dev/media/turngw"
)

func testLogger() *slog.Logger {
	if os.Getenv("MEDIA_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

var gatewaySecret = []byte("swarm-test-master-secret-0123456789abcdef")

// newGateway starts a TURN gateway on 127.0.0.1 relaying toward 127.0.0.0/8.
func newGateway(t *testing.T) *turngw.Server {
	t.Helper()
	gw, err := turngw.New(turngw.Config{
		ListenAddress: "127.0.0.1",
		RelayAddress:  net.IPv4(127, 0, 0, 1),
		Secret:        gatewaySecret,
		AllowedPeers:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:        testLogger(),
	})
	if err != nil {
		t.Fatalf("TURN gateway: %v", err)
	}
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("close the TURN gateway: %v", err)
		}
	})
	return gw
}

// p2p is a swarm driven through its control protocol whose publisher and viewer are each
// other's remote peer (the swarm's peer-to-peer mode): it hands each one's candidates to the
// other.
type p2p struct {
	client *control.Client
	ctx    context.Context

	mu     sync.Mutex
	to     map[string]string // peer → the peer its candidates go to
	held   map[string][]json.RawMessage
	local  map[string][]string // peer → its candidate lines
	states map[string]string
}

func newP2P(t *testing.T) *p2p {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s, err := New(Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	in, inW := io.Pipe()
	outR, out := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(context.Background(), in, out); err != nil {
			t.Errorf("swarm: %v", err)
		}
		_ = out.Close()
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		<-done
	})
	p := &p2p{ctx: ctx, to: map[string]string{}, held: map[string][]json.RawMessage{}, local: map[string][]string{}, states: map[string]string{}}
	p.client = control.NewClient(outR, inW, p.onEvent)
	return p
}

func (p *p2p) onEvent(ev control.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Event {
	case "state":
		p.states[ev.Peer] = ev.State
	case "candidate":
		var c struct {
			Candidate string `json:"candidate"`
		}
		_ = json.Unmarshal(ev.Candidate, &c)
		p.local[ev.Peer] = append(p.local[ev.Peer], c.Candidate)
		if to, ok := p.to[ev.Peer]; ok {
			go p.send(to, ev.Candidate)
		} else {
			p.held[ev.Peer] = append(p.held[ev.Peer], ev.Candidate)
		}
	}
}

func (p *p2p) send(to string, candidate json.RawMessage) {
	_ = p.client.Call(p.ctx, "candidate", map[string]any{"peer": to, "candidate": candidate}, nil)
}

// link sends from's candidates (the held ones, then the next ones) to to.
func (p *p2p) link(from, to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.to[from] = to
	for _, c := range p.held[from] {
		go p.send(to, c)
	}
	delete(p.held, from)
}

func (p *p2p) candidates(peer string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.local[peer]...)
}

func (p *p2p) state(peer string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.states[peer]
}

// connect makes a publisher (with publishParams) and a viewer of it (with viewParams).
func (p *p2p) connect(t *testing.T, viewer string, publishParams, viewParams map[string]any) (publisher string) {
	t.Helper()
	var offer PublishResult
	if err := p.client.Call(p.ctx, "publish", publishParams, &offer); err != nil {
		t.Fatalf("publish: %v", err)
	}
	params := map[string]any{"id": viewer, "sdp": offer.SDP}
	for k, v := range viewParams {
		params[k] = v
	}
	var answer sdpResult
	if err := p.client.Call(p.ctx, "view", params, &answer); err != nil {
		t.Fatalf("view: %v", err)
	}
	p.link(offer.Peer, viewer)
	if err := p.client.Call(p.ctx, "answer", map[string]any{"peer": offer.Peer, "sdp": answer.SDP}, nil); err != nil {
		t.Fatalf("answer: %v", err)
	}
	p.link(viewer, offer.Peer)
	return offer.Peer
}

// A viewer with relayOnly gathers only relayed candidates, on the TURN gateway, and receives
// the publisher's packets through it, with TURN over UDP and over TCP.
func TestRelayOnlyViewerThroughTURN(t *testing.T) {
	gw := newGateway(t)
	p := newP2P(t)
	room := "default/demo"
	for i, url := range []any{
		fmt.Sprintf("turn:127.0.0.1:%d", gw.UDPAddr().Port),                         // a string, as browsers allow
		[]string{fmt.Sprintf("turn:127.0.0.1:%d?transport=tcp", gw.TCPAddr().Port)}, // an array
	} {
		viewer := fmt.Sprintf("v-%d", i)
		username, password, err := turngw.Mint(turngw.RoomKey(gatewaySecret, room), room, viewer, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		bytesBefore := gw.Metrics().BytesFromPeers
		pub := p.connect(t, viewer, map[string]any{"bitrate": 300_000}, map[string]any{
			"iceServers": []map[string]any{{"urls": url, "username": username, "credential": password}},
			"relayOnly":  true,
		})
		deadline := time.Now().Add(30 * time.Second)
		for {
			var st Stats
			if err := p.client.Call(p.ctx, "stats", nil, &st); err != nil {
				t.Fatal(err)
			}
			var got *ViewerStats
			for i := range st.PerViewer {
				if st.PerViewer[i].ID == viewer {
					got = &st.PerViewer[i]
				}
			}
			if got != nil && got.Connected && got.FirstVideoAt != 0 && got.Packets >= 50 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("viewer %s (state %q) did not receive through TURN: %+v", viewer, p.state(viewer), got)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cands := p.candidates(viewer)
		if len(cands) == 0 {
			t.Fatalf("viewer %s announced no candidate", viewer)
		}
		for _, c := range cands {
			if !strings.Contains(c, " typ relay ") || !strings.Contains(c, " 127.0.0.1 ") {
				t.Errorf("viewer %s candidate %q, want only relayed ones on 127.0.0.1", viewer, c)
			}
		}
		if m := gw.Metrics(); m.Allocations < 1 || m.BytesFromPeers <= bytesBefore {
			t.Errorf("gateway metrics %+v: want an allocation and relayed bytes", m)
		}
		for _, id := range []string{viewer, pub} {
			// Closing one side may end the other first (DTLS close_notify): unknown_peer then.
			var ce *control.Error
			if err := p.client.Call(p.ctx, "close", map[string]any{"id": id}, nil); err != nil && !(errors.As(err, &ce) && ce.Code == control.CodeUnknownPeer) {
				t.Fatalf("close %s: %v", id, err)
			}
		}
	}
}

// publish and view refuse ICE configurations that a browser would refuse, and relayOnly
// without a TURN server.
func TestICEServerParamsRefused(t *testing.T) {
	p := newP2P(t)
	for _, c := range []map[string]any{
		{"relayOnly": true},
		{"relayOnly": true, "iceServers": []map[string]any{{"urls": "stun:127.0.0.1:3478"}}},
		{"iceServers": []map[string]any{{"urls": "http://127.0.0.1:3478"}}},
		{"iceServers": []map[string]any{{"urls": []string{}}}},
		{"iceServers": []map[string]any{{"urls": 5}}},
		{"iceServers": []map[string]any{{"urls": "turn:127.0.0.1:3478"}}},
		{"iceServers": []map[string]any{{"urls": "turn:127.0.0.1:3478", "username": "u"}}},
		{"iceServers": "turn:127.0.0.1:3478"},
	} {
		for _, method := range []string{"publish", "view"} {
			params := map[string]any{"id": "v", "sdp": "v=0"}
			for k, v := range c {
				params[k] = v
			}
			err := p.client.Call(p.ctx, method, params, nil)
			var ce *control.Error
			if !errors.As(err, &ce) || ce.Code != control.CodeBadRequest {
				t.Errorf("%s %v: %v, want bad_request", method, c, err)
			}
		}
	}
	// A STUN server alone is fine.
	var offer PublishResult
	if err := p.client.Call(p.ctx, "publish", map[string]any{"iceServers": []map[string]any{{"urls": "stun:127.0.0.1:3478"}}}, &offer); err != nil {
		t.Fatalf("publish with a STUN server: %v", err)
	}
	if err := p.client.Call(p.ctx, "close", map[string]any{"peer": offer.Peer}, nil); err != nil {
		t.Fatal(err)
	}
}
