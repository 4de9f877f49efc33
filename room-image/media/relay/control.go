package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/control"
	"streamroom.dev/media/internal/signaling"
)

type peerParams struct {
	Peer      string                   `json:"peer"`
	SDP       string                   `json:"sdp"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
}

type sdpResult struct {
	SDP string `json:"sdp"`
}

func (r *Relay) handle(_ context.Context, req *control.Request) (any, func(), error) {
	var params peerParams
	if err := req.DecodeParams(&params); err != nil {
		return nil, nil, err
	}
	switch req.Method {
	case "publish":
		return r.publish(params)
	case "subscribe":
		return r.subscribe(params)
	case "answer":
		return nil, nil, r.answer(params)
	case "candidate":
		return nil, nil, r.candidate(params)
	case "close":
		return nil, nil, r.closePeer(params)
	case "keyframe":
		r.counters.keyframeRequestsIn.Add(1)
		r.keyframes.request()
		return nil, nil, nil
	case "stats":
		st, err := r.stats()
		return st, nil, err
	default:
		return nil, nil, control.Errorf(control.CodeBadRequest, "unknown method %q", req.Method)
	}
}

func requireParams(params peerParams, sdp bool) error {
	if params.Peer == "" {
		return control.Errorf(control.CodeBadRequest, "missing params.peer")
	}
	if sdp && params.SDP == "" {
		return control.Errorf(control.CodeBadRequest, "missing params.sdp")
	}
	return nil
}

func (r *Relay) lookup(id string) (*peer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[id]
	if p == nil {
		return nil, control.Errorf(control.CodeUnknownPeer, "no peer %q", id)
	}
	return p, nil
}

func (r *Relay) checkNewID(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers[id] != nil {
		return control.Errorf(control.CodeBadRequest, "peer %q exists", id)
	}
	return nil
}

// register adds p to the peers; false when the relay closed meanwhile.
func (r *Relay) register(p *peer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.peers[p.id] = p
	return true
}

var errClosing = errors.New("the relay is closing")

// publish makes the offer's sender the room's source, replacing the previous one.
func (r *Relay) publish(params peerParams) (any, func(), error) {
	if err := requireParams(params, true); err != nil {
		return nil, nil, err
	}
	if err := checkPublishOffer(params.SDP); err != nil {
		return nil, nil, err
	}
	if err := r.checkNewID(params.Peer); err != nil {
		return nil, nil, err
	}
	p, err := r.newPeer(params.Peer, r.sourceAPI)
	if err != nil {
		return nil, nil, err
	}
	src := newSource(p, r.cfg.MaxPublishBitrate)
	answer, err := r.answerOffer(p, params.SDP)
	if err != nil {
		p.discard()
		return nil, nil, err
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		p.discard()
		return nil, nil, errClosing
	}
	old := r.source
	if old != nil {
		old.current.Store(false)
	}
	r.source = src
	src.current.Store(true)
	r.peers[p.id] = p
	r.mu.Unlock()

	if old != nil {
		r.log.Info("source replaced", "old", old.peer.id, "new", p.id)
		r.removePeerAsync(old.peer, signaling.StateClosed)
	}
	return sdpResult{SDP: answer}, p.announce, nil
}

func (r *Relay) answerOffer(p *peer, offer string) (string, error) {
	if err := p.setRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", control.Errorf(control.CodeBadSDP, "cannot answer the offer: %v", err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	return withVideoBandwidth(answer.SDP, videoTIAS(r.cfg.MaxPublishBitrate))
}

// subscribe makes a viewer connection and returns the relay's offer.
func (r *Relay) subscribe(params peerParams) (any, func(), error) {
	if err := requireParams(params, false); err != nil {
		return nil, nil, err
	}
	if err := r.checkNewID(params.Peer); err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	viewers := 0
	for _, p := range r.peers {
		if p.viewer != nil {
			viewers++
		}
	}
	r.mu.Unlock()
	if viewers >= r.cfg.MaxPeers {
		return nil, nil, control.Errorf(control.CodeTooManyPeers, "%d viewer connections already", viewers)
	}

	p, err := r.newPeer(params.Peer, r.viewerAPI)
	if err != nil {
		return nil, nil, err
	}
	if _, err := newViewer(p); err != nil {
		p.discard()
		return nil, nil, fmt.Errorf("add viewer tracks: %w", err)
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.discard()
		return nil, nil, fmt.Errorf("create offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		p.discard()
		return nil, nil, fmt.Errorf("set local description: %w", err)
	}
	if !r.register(p) {
		p.discard()
		return nil, nil, errClosing
	}
	return sdpResult{SDP: offer.SDP}, p.announce, nil
}

func (r *Relay) answer(params peerParams) error {
	if err := requireParams(params, true); err != nil {
		return err
	}
	p, err := r.lookup(params.Peer)
	if err != nil {
		return err
	}
	if p.viewer == nil {
		return control.Errorf(control.CodeBadRequest, "peer %q is not a viewer", params.Peer)
	}
	return p.setRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: params.SDP})
}

func (r *Relay) candidate(params peerParams) error {
	if err := requireParams(params, false); err != nil {
		return err
	}
	if params.Candidate == nil {
		return control.Errorf(control.CodeBadRequest, "missing params.candidate")
	}
	p, err := r.lookup(params.Peer)
	if err != nil {
		return err
	}
	return p.addRemoteCandidate(*params.Candidate)
}

func (r *Relay) closePeer(params peerParams) error {
	if err := requireParams(params, false); err != nil {
		return err
	}
	p, err := r.lookup(params.Peer)
	if err != nil {
		return err
	}
	r.removePeer(p, signaling.StateClosed)
	return nil
}
