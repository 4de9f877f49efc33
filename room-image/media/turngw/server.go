package turngw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"

	"streamroom.dev/media/internal/pionlog"
)

// closeTimeout bounds how long Close waits for the sockets to close.
const closeTimeout = 5 * time.Second

// clockSkew is how far ahead of the gateway's clock a room's may be: a username minted for the
// full MaxCredentialTTL on a node whose clock runs ahead is still accepted.
const clockSkew = 5 * time.Minute

// Server is a running TURN gateway.
type Server struct {
	cfg     Config
	log     *slog.Logger
	limited *logLimiter
	policy  peerPolicy
	quota   *quota
	conns   *tcpConns
	metrics *metrics
	act     *activity

	turn    *turn.Server
	udp     *udpListener
	udpAddr *net.UDPAddr
	tcpAddr *net.TCPAddr

	closed     atomic.Bool
	failed     atomic.Bool // a listener ended while the gateway was not closing
	closeOnce  sync.Once
	closeErr   error
	stopReaper chan struct{}
	reaperDone chan struct{}
}

// New binds the TURN port (UDP and TCP) and starts serving.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("TURN gateway config: %w", err)
	}
	listenIP := net.ParseIP(cfg.ListenAddress)
	selfIPs, err := localIPs(listenIP)
	if err != nil {
		return nil, err
	}
	relayIP, _ := netip.AddrFromSlice(cfg.RelayAddress)
	selfIPs = append(selfIPs, relayIP.Unmap())

	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		limited:    &logLimiter{out: cfg.Logger, interval: 10 * time.Second, burst: 20},
		quota:      newQuota(cfg.MaxAllocations, cfg.MaxAllocationsPerUser, cfg.now),
		metrics:    newMetrics(),
		act:        newActivity(),
		stopReaper: make(chan struct{}),
		reaperDone: make(chan struct{}),
	}
	s.conns = &tcpConns{s: s, max: cfg.MaxTCPConnections, conns: map[string]*tcpConn{}}

	udp, tcp, err := listenBoth(listenIP, cfg.Port)
	if err != nil {
		return nil, err
	}
	s.udpAddr = udp.LocalAddr().(*net.UDPAddr)
	s.tcpAddr = tcp.Addr().(*net.TCPAddr)
	s.policy = peerPolicy{
		networks: cfg.AllowedPeers,
		ports:    cfg.AllowedPeerPorts,
		selfIPs:  selfIPs,
		selfPort: uint16(s.udpAddr.Port),

		selfAnyLocal: listenIP.IsUnspecified(),
	}
	s.udp = &udpListener{UDPConn: udp, s: s}
	s.act.add() // the UDP reader
	s.act.add() // the TCP acceptor
	alloc := relayAllocator{s: s}
	s.turn, err = turn.NewServer(turn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.admit,
		LoggerFactory: pionlog.Factory{Logger: cfg.Logger},
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnAllocationDeleted: s.onAllocationDeleted,
			OnAllocationError: func(src, _ net.Addr, _, message string) {
				s.log.Debug("TURN request failed", "client", src.String(), "err", message)
			},
			OnPermissionCreated: func(src, _ net.Addr, _, username, _ string, relay net.Addr, peer net.IP) {
				s.log.Debug("permission created", "client", src.String(), "username", username, "relay", relay.String(), "peer", peer.String())
			},
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            s.udp,
			RelayAddressGenerator: alloc,
			PermissionHandler:     s.permit,
		}},
		ListenerConfigs: []turn.ListenerConfig{{
			Listener:              &tcpListener{TCPListener: tcp, s: s},
			RelayAddressGenerator: alloc,
			PermissionHandler:     s.permit,
		}},
	})
	if err != nil {
		_ = udp.Close()
		_ = tcp.Close()
		return nil, fmt.Errorf("start the TURN server: %w", err)
	}
	go s.reapIdleConns()
	return s, nil
}

// listenerEnded notes that pion stopped reading a listener; unless closing, the gateway is
// broken (and /healthz says so, for a restart).
func (s *Server) listenerEnded(transport string, err error) {
	if s.closed.Load() {
		return
	}
	s.failed.Store(true)
	s.log.Error("TURN listener stopped", "transport", transport, "err", err)
}

// UDPAddr is the TURN port's UDP address.
func (s *Server) UDPAddr() *net.UDPAddr { return s.udpAddr }

// TCPAddr is the TURN port's TCP address (the same port number).
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcpAddr }

// Close stops serving, closes every allocation and connection, and waits (a few seconds at
// most) until their sockets are closed.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stopReaper)
		<-s.reaperDone
		s.act.close()
		var errs []error
		// A listener that already failed is closed: nothing more to report about it.
		if err := s.turn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close the TURN server: %w", err))
		}
		s.conns.closeAll()
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := s.act.wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("wait for the TURN sockets: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Server) reapIdleConns() {
	defer close(s.reaperDone)
	tick := time.NewTicker(min(s.cfg.TCPIdleTimeout/2, 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.stopReaper:
			return
		case <-tick.C:
			s.conns.closeIdle(s.cfg.now().Add(-s.cfg.TCPIdleTimeout))
		}
	}
}

// authenticate is pion's AuthHandler: it checks the username and returns the long-term
// credential key of the password that the username's room would have minted. pion then checks
// the request's message integrity with it (a mismatch comes back through onAuth).
func (s *Server) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	refuse := func(reason string, err error) ([]byte, bool) {
		s.metrics.authFailures[reason].Add(1)
		s.limited.log("TURN credential refused", "reason", reason, "client", src.String(), "username", username, "err", err)
		return nil, false
	}
	if realm != s.cfg.Realm {
		return refuse(authRealm, fmt.Errorf("realm %q, want %q", realm, s.cfg.Realm))
	}
	cred, err := ParseUsername(username)
	if err != nil {
		return refuse(authMalformed, err)
	}
	now := s.cfg.now()
	if !now.Before(cred.Expiry) {
		return refuse(authExpired, fmt.Errorf("expired %s ago", now.Sub(cred.Expiry).Round(time.Second)))
	}
	if ttl := cred.Expiry.Sub(now); ttl > s.cfg.MaxCredentialTTL+clockSkew {
		return refuse(authTooLong, fmt.Errorf("expires in %s, more than the limit %s", ttl.Round(time.Second), s.cfg.MaxCredentialTTL))
	}
	password := Password(RoomKey(s.cfg.Secret, cred.Room()), username)
	return turn.GenerateAuthKey(username, s.cfg.Realm, password), true
}

// onAuth counts wrong passwords: the username was well formed, the integrity did not match.
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		return
	}
	s.metrics.authFailures[authPassword].Add(1)
	s.limited.log("TURN credential refused", "reason", authPassword, "client", src.String(), "username", username, "method", method)
}

// quotaUser is the user an allocation counts against: the room and the user ID.
func quotaUserOf(username string) string {
	cred, err := ParseUsername(username)
	if err != nil {
		return username // not reached: the username was authenticated
	}
	return cred.Room() + ":" + cred.UserID
}

// admit is pion's QuotaHandler, asked before an allocation is made.
func (s *Server) admit(username, _ string, src net.Addr) bool {
	user := quotaUserOf(username)
	if limit := s.quota.reserve(user, src); limit != "" {
		s.metrics.quotaRefusals[limit].Add(1)
		s.limited.log("allocation refused: quota reached", "limit", limit, "client", src.String(), "user", user)
		return false
	}
	return true
}

func (s *Server) onAllocationCreated(src, dst net.Addr, _, username, _ string, relay net.Addr, _ int) {
	s.quota.created(src, dst, quotaUserOf(username))
	if src.Network() == "tcp" {
		s.conns.allocated(src, true)
	}
	s.log.Debug("allocation created", "client", src.String(), "transport", src.Network(), "username", username, "relay", relay.String())
}

func (s *Server) onAllocationDeleted(src, dst net.Addr, _, username, _ string) {
	s.quota.deleted(src, dst)
	if src.Network() == "tcp" {
		s.conns.allocated(src, false)
	}
	s.log.Debug("allocation deleted", "client", src.String(), "username", username)
}

// permit is pion's PermissionHandler, asked for every CreatePermission and ChannelBind peer.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		s.refusePeer(refusedAddress, client, peer.String())
		return false
	}
	if reason := s.policy.addressRefusal(ip); reason != "" {
		s.refusePeer(reason, client, ip.Unmap().String())
		return false
	}
	return true
}

// refusePeer counts and logs a refused peer; client may be nil.
func (s *Server) refusePeer(reason string, client net.Addr, peer string) {
	s.metrics.peerRefusals[reason].Add(1)
	args := []any{"reason", reason, "peer", peer}
	if client != nil {
		args = append(args, "client", client.String())
	}
	s.limited.log("peer refused", args...)
}
