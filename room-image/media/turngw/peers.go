package turngw

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Refusal reasons, also the reason label of streamroom_turn_peer_refusals_total.
const (
	refusedAddress = "address" // the peer's address is outside the allowed networks
	refusedPort    = "port"    // the peer's port is outside the allowed ports
	refusedSelf    = "self"    // the peer is the gateway's own TURN port
)

// peerPolicy says where relayed traffic may go. Permissions (CreatePermission, ChannelBind) are
// checked on the address alone, as TURN permissions are; every relayed datagram is checked
// again on address and port by the relay sockets.
type peerPolicy struct {
	networks []netip.Prefix
	ports    []PortRange
	selfIPs  []netip.Addr // the addresses the TURN port is reachable on
	selfPort uint16
	// selfAnyLocal: the TURN port is bound to the unspecified address, so it is also reached on
	// every loopback address and on 0.0.0.0.
	selfAnyLocal bool
}

// addressRefusal returns why ip may not be a peer, or "".
func (p *peerPolicy) addressRefusal(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, n := range p.networks {
		if n.Contains(ip) {
			return ""
		}
	}
	return refusedAddress
}

// refusal returns why a datagram may not go to (or come from) peer, or "".
func (p *peerPolicy) refusal(peer netip.AddrPort) string {
	if r := p.addressRefusal(peer.Addr()); r != "" {
		return r
	}
	port := peer.Port()
	allowed := false
	for _, r := range p.ports {
		if r.contains(port) {
			allowed = true
			break
		}
	}
	if !allowed {
		return refusedPort
	}
	// Relaying into the gateway's own TURN port would make relayed data look like a client's
	// requests (allocations made from the relay itself, loops).
	if port == p.selfPort {
		ip := peer.Addr().Unmap()
		if p.selfAnyLocal && (ip.IsLoopback() || ip.IsUnspecified()) {
			return refusedSelf
		}
		for _, self := range p.selfIPs {
			if self == ip {
				return refusedSelf
			}
		}
	}
	return ""
}

func addrPortOf(addr net.Addr) (netip.AddrPort, bool) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
}

// errRefusedPeer is wrapped by relayConn.WriteTo's refusals.
var errRefusedPeer = errors.New("peer refused")

// relayAllocator makes the relayed sockets: UDP, on the relay address only, each one checking
// every datagram against the peer policy and counting the relayed bytes.
type relayAllocator struct{ s *Server }

func (g relayAllocator) Validate() error { return nil }

func (g relayAllocator) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	if network != "udp4" {
		return nil, nil, fmt.Errorf("relayed %s allocations are not offered", network)
	}
	if !g.s.act.add() {
		return nil, nil, errClosing
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: g.s.cfg.RelayAddress, Port: requestedPort})
	if err != nil {
		g.s.act.done()
		return nil, nil, fmt.Errorf("relay socket on %s: %w", g.s.cfg.RelayAddress, err)
	}
	return &relayConn{PacketConn: conn, s: g.s}, conn.LocalAddr(), nil
}

func (g relayAllocator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("TCP relaying (RFC 6062) is not offered")
}

// relayConn is an allocation's relayed socket.
type relayConn struct {
	net.PacketConn
	s         *Server
	closeOnce sync.Once
}

// WriteTo sends a client's data to a peer, if the policy allows that peer.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	peer, ok := addrPortOf(addr)
	if !ok {
		return 0, fmt.Errorf("%w: %v is not an IP address and port", errRefusedPeer, addr)
	}
	if reason := c.s.policy.refusal(peer); reason != "" {
		c.s.refusePeer(reason, nil, peer.String())
		return 0, fmt.Errorf("%w: %s (%s)", errRefusedPeer, peer, reason)
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	c.s.metrics.bytesToPeers.Add(uint64(n))
	return n, err
}

// ReadFrom returns the next datagram from an allowed peer; others are dropped here, before
// pion's permission check (which would drop them too: no permission can name them).
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		peer, ok := addrPortOf(addr)
		if !ok {
			continue
		}
		if reason := c.s.policy.refusal(peer); reason != "" {
			c.s.metrics.peerRefusals[reason].Add(1)
			continue
		}
		c.s.metrics.bytesFromPeers.Add(uint64(n))
		return n, addr, nil
	}
}

func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	c.closeOnce.Do(c.s.act.done)
	return err
}
