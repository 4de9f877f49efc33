package turngw

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"streamroom.dev/media/internal/harness"
	"streamroom.dev/media/relay"
	"streamroom.dev/media/swarm"
)

// roomEnv is a media relay (the room pod's) and a swarm in this process, on 127.0.0.1, driven
// through their control protocols as the room server does, and a TURN gateway.
type roomEnv struct {
	gw  *Server
	h   *harness.Harness
	ctx context.Context

	mu         sync.Mutex
	candidates map[string][]string // swarm peer → its candidate lines
}

func newRoomEnv(t *testing.T) *roomEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	e := &roomEnv{gw: newTestServer(t, nil), ctx: ctx, candidates: map[string][]string{}}

	r, err := relay.New(relay.Config{
		ListenAddress:   "127.0.0.1",
		IncludeLoopback: true,
		ConnectTimeout:  4 * time.Second,
		Logger:          testLogger(),
	})
	if err != nil {
		t.Fatalf("new relay: %v", err)
	}
	sw, err := swarm.New(swarm.Config{Logger: testLogger()})
	if err != nil {
		t.Fatalf("new swarm: %v", err)
	}
	relayIn, relayInW := io.Pipe()
	relayOutR, relayOut := io.Pipe()
	swarmIn, swarmInW := io.Pipe()
	swarmOutR, swarmOut := io.Pipe()
	var wg sync.WaitGroup
	serve := func(name string, run func() error, out *io.PipeWriter) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			_ = out.Close()
		}()
	}
	serve("relay", func() error { return r.Serve(context.Background(), relayIn, relayOut) }, relayOut)
	serve("swarm", func() error { return sw.Serve(context.Background(), swarmIn, swarmOut) }, swarmOut)
	t.Cleanup(func() {
		_ = relayInW.Close()
		_ = swarmInW.Close()
		wg.Wait()
	})
	e.h = harness.New(relayInW, relayOutR, swarmInW, swarmOutR)
	e.h.OnSwarmCandidate = func(peer string, candidate json.RawMessage) {
		var c struct {
			Candidate string `json:"candidate"`
		}
		_ = json.Unmarshal(candidate, &c)
		e.mu.Lock()
		e.candidates[peer] = append(e.candidates[peer], c.Candidate)
		e.mu.Unlock()
	}
	if _, err := e.h.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// viaTURN returns view params for a relay-only viewer whose ICE server is the gateway.
func (e *roomEnv) viaTURN(url, username, password string) map[string]any {
	return map[string]any{
		"iceServers": []map[string]any{{"urls": []string{url}, "username": username, "credential": password}},
		"relayOnly":  true,
	}
}

func (e *roomEnv) viewer(t *testing.T, id string) swarm.ViewerStats {
	t.Helper()
	var st swarm.Stats
	if err := e.h.Swarm.Call(e.ctx, "stats", nil, &st); err != nil {
		t.Fatalf("swarm stats: %v", err)
	}
	for _, v := range st.PerViewer {
		if v.ID == id {
			return v
		}
	}
	return swarm.ViewerStats{}
}

// A swarm viewer whose only path to the room's media relay is the TURN gateway (relay-only
// ICE, TURN over UDP and over TCP) receives the swarm publisher's broadcast through the relay;
// a viewer with a credential from another room's key never connects.
func TestRelayViewerThroughGateway(t *testing.T) {
	e := newRoomEnv(t)
	pub, _, err := e.h.Publish(e.ctx, 500_000, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.h.WaitState(e.ctx, harness.RelaySide, pub, "connected"); err != nil {
		t.Fatal(err)
	}

	room := "default/demo"
	port := e.gw.UDPAddr().Port
	for id, url := range map[string]string{
		"v-udp": fmt.Sprintf("turn:127.0.0.1:%d", port),
		"v-tcp": fmt.Sprintf("turn:127.0.0.1:%d?transport=tcp", port),
	} {
		username, password := mint(t, room, id, time.Hour)
		if err := e.h.AddViewerWith(e.ctx, id, e.viaTURN(url, username, password)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"v-udp", "v-tcp"} {
		if err := e.h.WaitState(e.ctx, harness.SwarmSide, id, "connected"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, id+" receives video", func() bool {
			v := e.viewer(t, id)
			return v.FirstVideoAt != 0 && v.Packets >= 100
		})
		e.mu.Lock()
		cands := e.candidates[id]
		e.mu.Unlock()
		if len(cands) == 0 {
			t.Errorf("%s announced no candidate", id)
		}
		for _, c := range cands {
			if !strings.Contains(c, " typ relay ") {
				t.Errorf("%s announced %q, want relayed candidates only", id, c)
			}
		}
	}
	m := e.gw.Metrics()
	if m.Allocations != 2 || m.TCPConnections != 1 || m.BytesFromPeers < 50_000 {
		t.Errorf("gateway metrics %+v: want 2 allocations (one over TCP) and the relayed broadcast", m)
	}

	// Another room's key: the gateway refuses the allocation, the viewer has no candidate, and
	// the relay gives up on it after its connect timeout.
	username, _ := mint(t, room, "v-forged", time.Hour)
	forged := Password(RoomKey(testSecret, "default/other"), username)
	before := e.gw.Metrics().AuthFailures[authPassword]
	if err := e.h.AddViewerWith(e.ctx, "v-forged", e.viaTURN(fmt.Sprintf("turn:127.0.0.1:%d", port), username, forged)); err != nil {
		t.Fatal(err)
	}
	if err := e.h.WaitState(e.ctx, harness.RelaySide, "v-forged", "failed"); err != nil {
		t.Fatal(err)
	}
	if v := e.viewer(t, "v-forged"); v.Packets != 0 {
		t.Errorf("the forged viewer received %d packets", v.Packets)
	}
	if after := e.gw.Metrics().AuthFailures[authPassword]; after <= before {
		t.Errorf("password failures %d, want more than %d", after, before)
	}
}
