// Package signaling holds what the relay and the swarm share about driving a peer connection
// from the control protocol: the event shapes, and the ordering of trickled ICE candidates with
// the offer/answer exchange.
package signaling

import (
	"errors"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"
)

// Peer states reported in state events.
const (
	StateConnected = "connected"
	StateFailed    = "failed"
	StateClosed    = "closed"
)

// CandidateEvent hands a local ICE candidate to the other side.
type CandidateEvent struct {
	Event     string                  `json:"event"` // "candidate"
	Peer      string                  `json:"peer"`
	Candidate webrtc.ICECandidateInit `json:"candidate"`
}

// StateEvent reports a peer's state.
type StateEvent struct {
	Event string `json:"event"` // "state"
	Peer  string `json:"peer"`
	State string `json:"state"`
}

// MaxPendingCandidates bounds the remote candidates kept before the remote description is set.
const MaxPendingCandidates = 64

// ErrTooManyCandidates is returned by AddRemote past MaxPendingCandidates early candidates.
var ErrTooManyCandidates = fmt.Errorf("more than %d candidates before the remote description", MaxPendingCandidates)

// Candidates orders a peer connection's candidates with its signaling: local candidates are
// held until Announce (the description they belong to has been handed out), and remote ones
// until the remote description is set.
type Candidates struct {
	pc   *webrtc.PeerConnection
	emit func(webrtc.ICECandidateInit)

	mu        sync.Mutex
	announced bool
	local     []webrtc.ICECandidateInit
	remoteSet bool
	remote    []webrtc.ICECandidateInit
}

// NewCandidates takes over pc's OnICECandidate; emit hands out one local candidate.
func NewCandidates(pc *webrtc.PeerConnection, emit func(webrtc.ICECandidateInit)) *Candidates {
	c := &Candidates{pc: pc, emit: emit}
	pc.OnICECandidate(c.onLocal)
	return c
}

func (c *Candidates) onLocal(cand *webrtc.ICECandidate) {
	if cand == nil {
		return // gathering complete
	}
	init := cand.ToJSON()
	c.mu.Lock()
	if !c.announced {
		c.local = append(c.local, init)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.emit(init)
}

// Announce lets local candidates flow, the held ones first.
func (c *Candidates) Announce() {
	c.mu.Lock()
	c.announced = true
	held := c.local
	c.local = nil
	c.mu.Unlock()
	for _, init := range held {
		c.emit(init)
	}
}

// SetRemoteDescription sets desc, then adds the remote candidates that came before it. It
// returns pion's error for desc, and the joined errors of refused early candidates.
func (c *Candidates) SetRemoteDescription(desc webrtc.SessionDescription) (descErr, candErr error) {
	if err := c.pc.SetRemoteDescription(desc); err != nil {
		return err, nil
	}
	c.mu.Lock()
	c.remoteSet = true
	held := c.remote
	c.remote = nil
	c.mu.Unlock()
	var errs []error
	for _, init := range held {
		if err := c.pc.AddICECandidate(init); err != nil {
			errs = append(errs, err)
		}
	}
	return nil, errors.Join(errs...)
}

// AddRemote adds a remote candidate, or holds it until the remote description is set.
func (c *Candidates) AddRemote(init webrtc.ICECandidateInit) error {
	c.mu.Lock()
	if !c.remoteSet {
		defer c.mu.Unlock()
		if len(c.remote) >= MaxPendingCandidates {
			return ErrTooManyCandidates
		}
		c.remote = append(c.remote, init)
		return nil
	}
	c.mu.Unlock()
	if err := c.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("add candidate: %w", err)
	}
	return nil
}
