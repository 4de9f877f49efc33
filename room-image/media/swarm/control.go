package swarm

import (
	"context"
	"fmt"

	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/control"
	"streamroom.dev/media/internal/signaling"
)

type params struct {
	Peer      string                   `json:"peer"`
	ID        string                   `json:"id"`
	SDP       string                   `json:"sdp"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
	Bitrate   int                      `json:"bitrate"`
	FPS       int                      `json:"fps"`

	// ICEServers and RelayOnly configure a publisher's or viewer's ICE like a browser's
	// RTCConfiguration iceServers and iceTransportPolicy "relay".
	ICEServers []iceServer `json:"iceServers"`
	RelayOnly  bool        `json:"relayOnly"`
}

// peerID is the peer a request names: "peer", or "id" for view and close.
func (p params) peerID() string {
	if p.Peer != "" {
		return p.Peer
	}
	return p.ID
}

// PublishResult is the publish method's result.
type PublishResult struct {
	Peer string `json:"peer"`
	SDP  string `json:"sdp"`
}

type sdpResult struct {
	SDP string `json:"sdp"`
}

func (s *Swarm) handle(_ context.Context, req *control.Request) (any, func(), error) {
	var prm params
	if err := req.DecodeParams(&prm); err != nil {
		return nil, nil, err
	}
	switch req.Method {
	case "publish":
		return s.publish(prm)
	case "answer":
		return nil, nil, s.answer(prm)
	case "view":
		return s.view(prm)
	case "candidate":
		return nil, nil, s.candidate(prm)
	case "close":
		p, err := s.lookup(prm.peerID())
		if err != nil {
			return nil, nil, err
		}
		s.remove(p, signaling.StateClosed)
		return nil, nil, nil
	case "stats":
		return s.stats(), nil, nil
	case "reset":
		s.reset()
		return nil, nil, nil
	default:
		return nil, nil, control.Errorf(control.CodeBadRequest, "unknown method %q", req.Method)
	}
}

func (s *Swarm) lookup(id string) (*peer, error) {
	if id == "" {
		return nil, control.Errorf(control.CodeBadRequest, "missing params.peer")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[id]
	if p == nil {
		return nil, control.Errorf(control.CodeUnknownPeer, "no peer %q", id)
	}
	return p, nil
}

// register adds p under its ID; the ID must be new.
func (s *Swarm) register(p *peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("the swarm is closing")
	}
	if s.peers[p.id] != nil {
		return control.Errorf(control.CodeBadRequest, "peer %q exists", p.id)
	}
	s.peers[p.id] = p
	return nil
}

// publish starts a synthetic publisher and returns its offer; it sends once connected.
func (s *Swarm) publish(prm params) (any, func(), error) {
	bitrate, fps := prm.Bitrate, prm.FPS
	if bitrate == 0 {
		bitrate = 1_000_000
	}
	if fps == 0 {
		fps = 30
	}
	if bitrate < 50_000 || bitrate > 200_000_000 || fps < 1 || fps > 120 {
		return nil, nil, control.Errorf(control.CodeBadRequest, "bitrate must be 50k..200M bits/s and fps 1..120")
	}
	ice, err := prm.configuration()
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.publishers++
	id := fmt.Sprintf("pub-%d", s.publishers)
	s.mu.Unlock()

	p, err := s.newPeer(id, s.publisherAPI, ice)
	if err != nil {
		return nil, nil, err
	}
	if p.publisher, err = newPublisher(s, p, bitrate, fps); err != nil {
		s.discard(p)
		return nil, nil, err
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		s.discard(p)
		return nil, nil, fmt.Errorf("create offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		s.discard(p)
		return nil, nil, fmt.Errorf("set local description: %w", err)
	}
	if err := s.register(p); err != nil {
		s.discard(p)
		return nil, nil, err
	}
	return PublishResult{Peer: id, SDP: offer.SDP}, p.candidates.Announce, nil
}

func (s *Swarm) answer(prm params) error {
	p, err := s.lookup(prm.peerID())
	if err != nil {
		return err
	}
	if p.publisher == nil {
		return control.Errorf(control.CodeBadRequest, "peer %q is not a publisher", p.id)
	}
	return s.setRemote(p, webrtc.SDPTypeAnswer, prm.SDP)
}

func (s *Swarm) setRemote(p *peer, typ webrtc.SDPType, sdp string) error {
	if sdp == "" {
		return control.Errorf(control.CodeBadRequest, "missing params.sdp")
	}
	descErr, candErr := p.candidates.SetRemoteDescription(webrtc.SessionDescription{Type: typ, SDP: sdp})
	if descErr != nil {
		return control.Errorf(control.CodeBadSDP, "%v", descErr)
	}
	if candErr != nil {
		s.log.Warn("early remote candidates refused", "peer", p.id, "err", candErr)
	}
	return nil
}

// view answers an offer (the relay's, or a browser's) with a counting viewer.
func (s *Swarm) view(prm params) (any, func(), error) {
	id := prm.peerID()
	if id == "" {
		return nil, nil, control.Errorf(control.CodeBadRequest, "missing params.id")
	}
	ice, err := prm.configuration()
	if err != nil {
		return nil, nil, err
	}
	p, err := s.newPeer(id, s.viewerAPI, ice)
	if err != nil {
		return nil, nil, err
	}
	p.viewer = newViewer(s, p)
	fail := func(err error) (any, func(), error) {
		s.discard(p)
		return nil, nil, err
	}
	if err := s.setRemote(p, webrtc.SDPTypeOffer, prm.SDP); err != nil {
		return fail(err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return fail(control.Errorf(control.CodeBadSDP, "cannot answer the offer: %v", err))
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("set local description: %w", err))
	}
	if err := s.register(p); err != nil {
		return fail(err)
	}
	return sdpResult{SDP: answer.SDP}, p.candidates.Announce, nil
}

func (s *Swarm) candidate(prm params) error {
	p, err := s.lookup(prm.peerID())
	if err != nil {
		return err
	}
	if prm.Candidate == nil {
		return control.Errorf(control.CodeBadRequest, "missing params.candidate")
	}
	if err := p.candidates.AddRemote(*prm.Candidate); err != nil {
		return control.Errorf(control.CodeBadRequest, "candidate: %v", err)
	}
	return nil
}
