// Package swarm is the headless client side of the benchmarks and tests: synthetic publishers
// (VP8-like video whose payloads carry their send time, Opus-like audio) and viewers that count
// packets, loss and one-way delay. It is driven by the same JSON-lines protocol as the relay, so
// a driver hands it SDPs that came through the real signaling path.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/rtcerr"

	"streamroom.dev/media/internal/control"
	"streamroom.dev/media/internal/pionlog"
	"streamroom.dev/media/internal/signaling"
)

// Config configures a swarm.
type Config struct {
	// IPs are the local addresses its peers gather host candidates on (default 127.0.0.1).
	IPs    []string
	Logger *slog.Logger // default slog.Default()
}

// Swarm holds the synthetic publishers and viewers.
type Swarm struct {
	log          *slog.Logger
	publisherAPI *webrtc.API
	viewerAPI    *webrtc.API
	out          *control.Writer

	mu         sync.Mutex
	peers      map[string]*peer
	publishers int // for publisher IDs
	closed     bool
	wg         sync.WaitGroup
}

// peer is a publisher or a viewer connection.
type peer struct {
	id         string
	pc         *webrtc.PeerConnection
	candidates *signaling.Candidates
	publisher  *publisher // exactly one of publisher and viewer is set
	viewer     *viewer

	mu        sync.Mutex
	connected bool
	done      bool
}

// New prepares a swarm.
func New(cfg Config) (*Swarm, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.IPs) == 0 {
		cfg.IPs = []string{"127.0.0.1"}
	}
	ips := make([]net.IP, 0, len(cfg.IPs))
	for _, s := range cfg.IPs {
		ip := net.ParseIP(s)
		if ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("candidate address %q is not an IPv4 address", s)
		}
		ips = append(ips, ip)
	}
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Logger: cfg.Logger}}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool {
		for _, allowed := range ips {
			if ip.Equal(allowed) {
				return true
			}
		}
		return false
	})

	s := &Swarm{log: cfg.Logger, peers: map[string]*peer{}}
	var err error
	if s.publisherAPI, err = newAPI(se, true); err != nil {
		return nil, err
	}
	if s.viewerAPI, err = newAPI(se, false); err != nil {
		return nil, err
	}
	return s, nil
}

// newAPI makes a browser-like stack: a publisher answers NACKs and sends sender reports, a
// viewer sends NACKs and receiver reports.
func newAPI(se webrtc.SettingEngine, publisher bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	feedback := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: feedback},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("register VP8: %w", err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register Opus: %w", err)
	}
	reg := &interceptor.Registry{}
	if publisher {
		responder, err := nack.NewResponderInterceptor()
		if err != nil {
			return nil, fmt.Errorf("nack responder: %w", err)
		}
		reg.Add(responder)
		senderReports, err := report.NewSenderInterceptor()
		if err != nil {
			return nil, fmt.Errorf("sender reports: %w", err)
		}
		reg.Add(senderReports)
	} else {
		generator, err := nack.NewGeneratorInterceptor()
		if err != nil {
			return nil, fmt.Errorf("nack generator: %w", err)
		}
		reg.Add(generator)
		receiverReports, err := report.NewReceiverInterceptor()
		if err != nil {
			return nil, fmt.Errorf("receiver reports: %w", err)
		}
		reg.Add(receiverReports)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg)), nil
}

// Serve answers the requests read from in until it ends or ctx is done, then closes every peer.
func (s *Swarm) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	defer s.Close()
	s.out = control.NewWriter(out)
	err := control.Serve(ctx, in, s.out, s.handle)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close closes every peer and waits for their goroutines.
func (s *Swarm) Close() {
	s.mu.Lock()
	s.closed = true
	peers := s.peers
	s.peers = map[string]*peer{}
	s.mu.Unlock()
	for _, p := range peers {
		s.shutdown(p, signaling.StateClosed)
	}
	s.wg.Wait()
}

func (s *Swarm) emit(ev any) {
	if s.out == nil {
		return
	}
	if err := s.out.Send(ev); err != nil {
		s.log.Debug("event not written", "err", err)
	}
}

// goTracked runs f on a goroutine that Close waits for; false when the swarm is closing.
func (s *Swarm) goTracked(f func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Swarm) newPeer(id string, api *webrtc.API, cfg webrtc.Configuration) (*peer, error) {
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		var invalid *rtcerr.InvalidAccessError
		if errors.As(err, &invalid) {
			return nil, control.Errorf(control.CodeBadRequest, "iceServers: %v", err)
		}
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	if len(cfg.ICEServers) > 0 {
		s.log.Debug("peer with ICE servers", "peer", id, "ice", describeICE(cfg))
	}
	p := &peer{id: id, pc: pc}
	p.candidates = signaling.NewCandidates(pc, func(c webrtc.ICECandidateInit) {
		s.emit(signaling.CandidateEvent{Event: "candidate", Peer: id, Candidate: c})
	})
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			p.mu.Lock()
			first := !p.connected && !p.done
			p.connected = true
			p.mu.Unlock()
			if first {
				s.emit(signaling.StateEvent{Event: "state", Peer: id, State: signaling.StateConnected})
				if p.publisher != nil {
					s.goTracked(p.publisher.run)
				}
			}
		case webrtc.PeerConnectionStateFailed:
			s.goTracked(func() { s.remove(p, signaling.StateFailed) })
		case webrtc.PeerConnectionStateClosed:
			s.goTracked(func() { s.remove(p, signaling.StateClosed) })
		default:
		}
	})
	return p, nil
}

func (p *peer) isConnected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

// discard closes a peer whose creating request failed: no event.
func (s *Swarm) discard(p *peer) {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	if p.publisher != nil {
		p.publisher.stop()
	}
	if err := p.pc.Close(); err != nil {
		s.log.Debug("close peer connection", "peer", p.id, "err", err)
	}
}

// remove forgets p and shuts it down.
func (s *Swarm) remove(p *peer, state string) {
	s.mu.Lock()
	if s.peers[p.id] == p {
		delete(s.peers, p.id)
	}
	s.mu.Unlock()
	s.shutdown(p, state)
}

// shutdown reports p's final state once and closes it.
func (s *Swarm) shutdown(p *peer, state string) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done = true
	p.mu.Unlock()
	if p.publisher != nil {
		p.publisher.stop()
	}
	if err := p.pc.Close(); err != nil {
		s.log.Debug("close peer connection", "peer", p.id, "err", err)
	}
	s.emit(signaling.StateEvent{Event: "state", Peer: p.id, State: state})
}
