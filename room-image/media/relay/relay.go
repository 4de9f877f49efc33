// Package relay is the room's selective forwarding unit: one source (a broadcaster's browser or
// another relay) publishes VP8 video and Opus audio, and the relay forwards the RTP packets,
// without decoding them, to every viewer. It is driven by the JSON-lines control protocol of
// package control (see README.md).
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/control"
	"streamroom.dev/media/internal/pionlog"
	"streamroom.dev/media/internal/signaling"
)

// Config is the relay's configuration; the zero value of a field means its default.
type Config struct {
	UDPPort           int           // the UDP port all peers share; 0 picks a free one
	TCPPort           int           // ICE-TCP port; 0 disables ICE-TCP
	ListenAddress     string        // default 0.0.0.0
	AnnounceAddresses []string      // host candidate addresses replacing the interfaces' (NAT 1:1)
	IncludeLoopback   bool          // also offer loopback candidates
	MaxPublishBitrate int           // bits/s, default 4000000
	MaxPeers          int           // viewer connections, default 1000
	ConnectTimeout    time.Duration // default 15s
	KeyframeInterval  time.Duration // default 1s
	Logger            *slog.Logger  // default slog.Default()
}

func (c *Config) setDefaults() {
	if c.ListenAddress == "" {
		c.ListenAddress = "0.0.0.0"
	}
	if c.MaxPublishBitrate <= 0 {
		c.MaxPublishBitrate = 4_000_000
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = 1000
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 15 * time.Second
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Relay is one room's media relay.
type Relay struct {
	cfg Config
	log *slog.Logger

	udpConn   *net.UDPConn
	udpMux    ice.UDPMux
	tcpLn     net.Listener
	tcpMux    ice.TCPMux
	sourceAPI *webrtc.API
	viewerAPI *webrtc.API

	video, audio *track
	keyframes    *keyframer
	counters     counters
	rates        *rateSampler

	out *control.Writer

	mu     sync.Mutex
	peers  map[string]*peer
	source *source
	closed bool

	wg sync.WaitGroup // goroutines of peers and forwarding

	// dropHook, set by tests only, makes a viewer's writer skip the first transmission of a
	// packet (not its retransmissions) when it returns true.
	dropHook func(peer string, p *packet) bool
}

// New opens the relay's ports and prepares its WebRTC stacks. Serve then runs it.
func New(cfg Config) (*Relay, error) {
	cfg.setDefaults()
	r := &Relay{
		cfg:   cfg,
		log:   cfg.Logger,
		peers: map[string]*peer{},
	}
	r.video = newTrack(r, kindVideo)
	r.audio = newTrack(r, kindAudio)
	r.keyframes = newKeyframer(cfg.KeyframeInterval, r.sendKeyframeRequest)
	if err := r.listen(); err != nil {
		r.closeListeners()
		return nil, err
	}
	if err := r.buildAPIs(); err != nil {
		r.closeListeners()
		return nil, err
	}
	r.rates = newRateSampler(&r.counters)
	return r, nil
}

func (r *Relay) listen() error {
	ip := net.ParseIP(r.cfg.ListenAddress)
	if ip == nil {
		return fmt.Errorf("listen address %q is not an IP address", r.cfg.ListenAddress)
	}
	if ip.IsLoopback() && !r.cfg.IncludeLoopback {
		return fmt.Errorf("listen address %s is loopback: without --include-loopback no candidate could reach it", ip)
	}
	network := "udp4"
	if ip.To4() == nil {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: r.cfg.UDPPort})
	if err != nil {
		return fmt.Errorf("listen on UDP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(r.cfg.UDPPort)), err)
	}
	// Bursts of key frames from a source and of retransmissions must not overflow the socket.
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	r.udpConn = conn
	logs := pionlog.Factory{Logger: r.log}
	r.udpMux = webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), conn)

	if r.cfg.TCPPort > 0 {
		ln, err := net.Listen("tcp"+network[3:], net.JoinHostPort(ip.String(), strconv.Itoa(r.cfg.TCPPort)))
		if err != nil {
			return fmt.Errorf("listen on TCP port %d: %w", r.cfg.TCPPort, err)
		}
		r.tcpLn = ln
		r.tcpMux = webrtc.NewICETCPMux(logs.NewLogger("tcpmux"), ln, 64)
	}
	return nil
}

func (r *Relay) closeListeners() {
	if r.udpMux != nil {
		_ = r.udpMux.Close()
	} else if r.udpConn != nil {
		_ = r.udpConn.Close()
	}
	if r.tcpMux != nil {
		_ = r.tcpMux.Close()
	} else if r.tcpLn != nil {
		_ = r.tcpLn.Close()
	}
}

// UDPPort returns the UDP port the relay listens on.
func (r *Relay) UDPPort() int { return r.udpConn.LocalAddr().(*net.UDPAddr).Port }

// TCPPort returns the ICE-TCP port, 0 when ICE-TCP is off.
func (r *Relay) TCPPort() int {
	if r.tcpLn == nil {
		return 0
	}
	return r.tcpLn.Addr().(*net.TCPAddr).Port
}

type readyEvent struct {
	Event   string `json:"event"`
	UDPPort int    `json:"udpPort"`
	TCPPort int    `json:"tcpPort"`
}

// Serve announces the relay on out (the ready event), then answers the requests read from in
// until in ends or ctx is done. It closes the relay before returning.
func (r *Relay) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	defer r.Close()
	r.out = control.NewWriter(out)
	if err := r.out.Send(readyEvent{Event: "ready", UDPPort: r.UDPPort(), TCPPort: r.TCPPort()}); err != nil {
		return err
	}
	r.log.Info("relay ready", "udpPort", r.UDPPort(), "tcpPort", r.TCPPort(), "listen", r.cfg.ListenAddress)
	err := control.Serve(ctx, in, r.out, r.handle)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close closes every peer and the ports, and waits for the relay's goroutines. It is idempotent.
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	peers := make([]*peer, 0, len(r.peers))
	for _, p := range r.peers {
		peers = append(peers, p)
	}
	r.peers = map[string]*peer{}
	r.source = nil
	r.mu.Unlock()

	for _, p := range peers {
		p.shutdown(signaling.StateClosed)
	}
	r.keyframes.close()
	r.rates.close()
	r.wg.Wait()
	r.closeListeners()
}

// emit writes an event line; a failure (the room server went away) is only logged, the relay
// stops when its input ends.
func (r *Relay) emit(ev any) {
	if r.out == nil {
		return
	}
	if err := r.out.Send(ev); err != nil {
		r.log.Debug("event not written", "err", err)
	}
}

// sendKeyframeRequest sends a PLI to the current source; false when there is none to ask.
func (r *Relay) sendKeyframeRequest() bool {
	r.mu.Lock()
	src := r.source
	r.mu.Unlock()
	if src == nil || !src.requestKeyframe() {
		return false
	}
	r.counters.keyframeRequestsOut.Add(1)
	return true
}

func (r *Relay) trackOf(k kind) *track {
	if k == kindVideo {
		return r.video
	}
	return r.audio
}
