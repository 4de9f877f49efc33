package relay

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/control"
	"streamroom.dev/media/internal/signaling"
)

// peer is one peer connection, the source's or a viewer's. It reports its state, trickles its
// candidates in order with the offer/answer exchange, and fails if it is not connected in time.
type peer struct {
	id         string
	relay      *Relay
	pc         *webrtc.PeerConnection
	candidates *signaling.Candidates

	// Exactly one of these is set.
	source *source
	viewer *viewer

	mu              sync.Mutex
	connected       bool
	terminated      bool
	connectDeadline *time.Timer
}

func (r *Relay) newPeer(id string, api *webrtc.API) (*peer, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	p := &peer{id: id, relay: r, pc: pc}
	p.candidates = signaling.NewCandidates(pc, func(c webrtc.ICECandidateInit) {
		r.emit(signaling.CandidateEvent{Event: "candidate", Peer: id, Candidate: c})
	})
	pc.OnConnectionStateChange(p.onStateChange)
	p.connectDeadline = time.AfterFunc(r.cfg.ConnectTimeout, p.onConnectTimeout)
	return p, nil
}

func (p *peer) isConnected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

// announce lets the local candidates flow: call it once the answer carrying the peer's
// description is written.
func (p *peer) announce() { p.candidates.Announce() }

// setRemoteDescription applies the remote description, then the candidates that came before it.
func (p *peer) setRemoteDescription(desc webrtc.SessionDescription) error {
	descErr, candErr := p.candidates.SetRemoteDescription(desc)
	if descErr != nil {
		return control.Errorf(control.CodeBadSDP, "%v", descErr)
	}
	if candErr != nil {
		p.relay.log.Warn("early remote candidates refused", "peer", p.id, "err", candErr)
	}
	return nil
}

func (p *peer) addRemoteCandidate(c webrtc.ICECandidateInit) error {
	if err := p.candidates.AddRemote(c); err != nil {
		return control.Errorf(control.CodeBadRequest, "candidate: %v", err)
	}
	return nil
}

func (p *peer) onStateChange(s webrtc.PeerConnectionState) {
	p.relay.log.Debug("peer state", "peer", p.id, "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.mu.Lock()
		if p.connected || p.terminated {
			p.mu.Unlock()
			return
		}
		p.connected = true
		p.connectDeadline.Stop()
		p.mu.Unlock()
		p.relay.emit(signaling.StateEvent{Event: "state", Peer: p.id, State: signaling.StateConnected})
		if p.viewer != nil {
			p.viewer.start()
		}
	case webrtc.PeerConnectionStateFailed:
		p.relay.removePeerAsync(p, signaling.StateFailed)
	case webrtc.PeerConnectionStateClosed:
		p.relay.removePeerAsync(p, signaling.StateClosed)
	default:
	}
}

func (p *peer) onConnectTimeout() {
	if p.isConnected() {
		return
	}
	p.relay.log.Info("peer did not connect in time", "peer", p.id, "timeout", p.relay.cfg.ConnectTimeout.String())
	p.relay.removePeerAsync(p, signaling.StateFailed)
}

// shutdown reports the peer's final state once and closes its connection.
func (p *peer) shutdown(state string) {
	p.mu.Lock()
	if p.terminated {
		p.mu.Unlock()
		return
	}
	p.terminated = true
	p.connectDeadline.Stop()
	p.mu.Unlock()

	if p.viewer != nil {
		p.viewer.stop()
	}
	if p.source != nil {
		p.source.stop()
	}
	if err := p.pc.Close(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		p.relay.log.Warn("close peer connection", "peer", p.id, "err", err)
	}
	p.relay.log.Info("peer closed", "peer", p.id, "state", state)
	p.relay.emit(signaling.StateEvent{Event: "state", Peer: p.id, State: state})
}

// discard closes a peer that was never announced (its request failed): no event.
func (p *peer) discard() {
	p.mu.Lock()
	p.terminated = true
	p.connectDeadline.Stop()
	p.mu.Unlock()
	if p.viewer != nil {
		p.viewer.stop()
	}
	if p.source != nil {
		p.source.stop()
	}
	if err := p.pc.Close(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		p.relay.log.Warn("close peer connection", "peer", p.id, "err", err)
	}
}

// removePeer forgets p and shuts it down.
func (r *Relay) removePeer(p *peer, state string) {
	r.mu.Lock()
	if r.peers[p.id] == p {
		delete(r.peers, p.id)
	}
	if r.source != nil && r.source.peer == p {
		r.source = nil
	}
	r.mu.Unlock()
	p.shutdown(state)
}

// removePeerAsync is removePeer for pion's callbacks, which must not close their own connection.
func (r *Relay) removePeerAsync(p *peer, state string) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		r.removePeer(p, state)
	}()
}
