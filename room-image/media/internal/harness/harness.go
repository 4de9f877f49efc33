// Package harness drives a relay and a swarm together through their control protocols, the
// way the room server does: it hands SDPs and trickled candidates from one to the other. Tests
// and the benchmark use it.
package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"streamroom.dev/media/internal/control"
)

// Side names the process an event came from.
type Side int

// The two sides.
const (
	RelaySide Side = iota
	SwarmSide
)

// Harness connects one relay and one swarm.
type Harness struct {
	Relay *control.Client
	Swarm *control.Client

	// OnRelayCandidate, when set, also sees the relay's candidates (for tests).
	OnRelayCandidate func(peer string, candidate json.RawMessage)
	// OnSwarmCandidate, when set, also sees the swarm's candidates (for tests).
	OnSwarmCandidate func(peer string, candidate json.RawMessage)

	toSwarm, toRelay *router
	ready            chan control.Event

	mu      sync.Mutex
	states  map[stateKey]string
	changed chan struct{}
}

type stateKey struct {
	side Side
	peer string
}

// New starts reading both sides' output.
func New(relayIn io.Writer, relayOut io.Reader, swarmIn io.Writer, swarmOut io.Reader) *Harness {
	h := &Harness{
		states:  map[stateKey]string{},
		changed: make(chan struct{}),
		ready:   make(chan control.Event, 1),
	}
	h.Relay = control.NewClient(relayOut, relayIn, func(ev control.Event) { h.onEvent(RelaySide, ev) })
	h.Swarm = control.NewClient(swarmOut, swarmIn, func(ev control.Event) { h.onEvent(SwarmSide, ev) })
	h.toSwarm = newRouter(h.Swarm)
	h.toRelay = newRouter(h.Relay)
	return h
}

func (h *Harness) onEvent(side Side, ev control.Event) {
	switch ev.Event {
	case "ready":
		select {
		case h.ready <- ev:
		default:
		}
	case "candidate":
		if side == RelaySide {
			if h.OnRelayCandidate != nil {
				h.OnRelayCandidate(ev.Peer, ev.Candidate)
			}
			h.toSwarm.forward(ev.Peer, ev.Candidate)
		} else {
			if h.OnSwarmCandidate != nil {
				h.OnSwarmCandidate(ev.Peer, ev.Candidate)
			}
			h.toRelay.forward(ev.Peer, ev.Candidate)
		}
	case "state":
		h.mu.Lock()
		h.states[stateKey{side, ev.Peer}] = ev.State
		close(h.changed)
		h.changed = make(chan struct{})
		h.mu.Unlock()
	}
}

// WaitReady waits for the relay's ready event.
func (h *Harness) WaitReady(ctx context.Context) (control.Event, error) {
	select {
	case ev := <-h.ready:
		return ev, nil
	case <-ctx.Done():
		return control.Event{}, fmt.Errorf("relay ready: %w", ctx.Err())
	}
}

// State returns the latest state event of a peer on a side ("" before any).
func (h *Harness) State(side Side, peer string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.states[stateKey{side, peer}]
}

// WaitState waits until the peer's latest state on side is state.
func (h *Harness) WaitState(ctx context.Context, side Side, peer, state string) error {
	for {
		h.mu.Lock()
		got := h.states[stateKey{side, peer}]
		changed := h.changed
		h.mu.Unlock()
		if got == state {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("peer %s: state %q, waiting for %q: %w", peer, got, state, ctx.Err())
		}
	}
}

// Publish makes a synthetic publisher in the swarm the relay's source; it returns its peer ID
// and the relay's answer.
func (h *Harness) Publish(ctx context.Context, bitrate, fps int) (peer, answerSDP string, err error) {
	var offer struct {
		Peer string `json:"peer"`
		SDP  string `json:"sdp"`
	}
	if err := h.Swarm.Call(ctx, "publish", map[string]any{"bitrate": bitrate, "fps": fps}, &offer); err != nil {
		return "", "", fmt.Errorf("swarm publish: %w", err)
	}
	h.toSwarm.open(offer.Peer)
	var answer struct {
		SDP string `json:"sdp"`
	}
	if err := h.Relay.Call(ctx, "publish", map[string]any{"peer": offer.Peer, "sdp": offer.SDP}, &answer); err != nil {
		return "", "", fmt.Errorf("relay publish: %w", err)
	}
	h.toRelay.open(offer.Peer)
	if err := h.Swarm.Call(ctx, "answer", map[string]any{"peer": offer.Peer, "sdp": answer.SDP}, nil); err != nil {
		return "", "", fmt.Errorf("swarm answer: %w", err)
	}
	return offer.Peer, answer.SDP, nil
}

// AddViewer subscribes a swarm viewer to the relay under id (the same on both sides).
func (h *Harness) AddViewer(ctx context.Context, id string) error {
	return h.AddViewerWith(ctx, id, nil)
}

// AddViewerWith is AddViewer with more params for the swarm's view (iceServers, relayOnly).
func (h *Harness) AddViewerWith(ctx context.Context, id string, viewParams map[string]any) error {
	var offer struct {
		SDP string `json:"sdp"`
	}
	if err := h.Relay.Call(ctx, "subscribe", map[string]any{"peer": id}, &offer); err != nil {
		return fmt.Errorf("relay subscribe %s: %w", id, err)
	}
	h.toRelay.open(id)
	var answer struct {
		SDP string `json:"sdp"`
	}
	params := make(map[string]any, len(viewParams)+2)
	for k, v := range viewParams {
		params[k] = v
	}
	params["id"], params["sdp"] = id, offer.SDP
	if err := h.Swarm.Call(ctx, "view", params, &answer); err != nil {
		return fmt.Errorf("swarm view %s: %w", id, err)
	}
	h.toSwarm.open(id)
	if err := h.Relay.Call(ctx, "answer", map[string]any{"peer": id, "sdp": answer.SDP}, nil); err != nil {
		return fmt.Errorf("relay answer %s: %w", id, err)
	}
	return nil
}

// router hands candidates to one side, holding those for a peer that side does not know yet.
type router struct {
	to *control.Client

	mu    sync.Mutex
	known map[string]bool
	held  map[string][]json.RawMessage
}

func newRouter(to *control.Client) *router {
	return &router{to: to, known: map[string]bool{}, held: map[string][]json.RawMessage{}}
}

func (r *router) forward(peer string, candidate json.RawMessage) {
	r.mu.Lock()
	if !r.known[peer] {
		r.held[peer] = append(r.held[peer], candidate)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	go r.send(peer, candidate)
}

// open marks peer as known to the receiving side and sends what was held for it.
func (r *router) open(peer string) {
	r.mu.Lock()
	r.known[peer] = true
	held := r.held[peer]
	delete(r.held, peer)
	r.mu.Unlock()
	for _, c := range held {
		go r.send(peer, c)
	}
}

func (r *router) send(peer string, candidate json.RawMessage) {
	// A peer closed meanwhile answers unknown_peer: nothing to do about it.
	_ = r.to.Call(context.Background(), "candidate", map[string]any{"peer": peer, "candidate": candidate}, nil)
}
