// Package turngw is StreamRoom's cluster TURN gateway: a TURN server (pion/turn) through which
// browsers reach the rooms' media relays on their pod IPs, when the cluster's nodes have no
// public address. Each room mints credentials for itself with its own key (see RoomKey); the
// gateway relays only toward the configured peer networks and ports.
package turngw

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults for Config's zero values (and the command's flags).
const (
	DefaultListenAddress         = "0.0.0.0"
	DefaultPort                  = 3478
	DefaultRealm                 = "streamroom"
	DefaultAllowedPeers          = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
	DefaultAllowedPeerPorts      = "1024-65535"
	DefaultMaxAllocations        = 10000
	DefaultMaxAllocationsPerUser = 10
	DefaultMaxCredentialTTL      = 24 * time.Hour
	DefaultTCPIdleTimeout        = 30 * time.Second
)

// Config configures a Server.
type Config struct {
	// ListenAddress is the address the TURN port is bound to, for UDP and TCP (default 0.0.0.0).
	ListenAddress string
	// Port is the TURN port, the same number for UDP and TCP (0: a free one; Addr tells which).
	Port int
	// RelayAddress is the IPv4 address relayed allocations are made on (required).
	RelayAddress net.IP
	// Realm is the TURN realm (default "streamroom").
	Realm string
	// Secret is the master secret that room keys are derived from (at least MinSecretBytes).
	Secret []byte
	// AllowedPeers are the networks relayed traffic may go to and come from (required).
	AllowedPeers []netip.Prefix
	// AllowedPeerPorts are the peer ports relayed traffic may go to and come from (default
	// 1024-65535).
	AllowedPeerPorts []PortRange
	// MaxAllocations bounds the allocations open at once (default 10000).
	MaxAllocations int
	// MaxTCPConnections bounds the TURN clients' TCP connections open at once (default
	// MaxAllocations: each carries at most one allocation).
	MaxTCPConnections int
	// MaxAllocationsPerUser bounds one user's allocations (default 10). A user is a room and a
	// user ID; the expiry is not part of it.
	MaxAllocationsPerUser int
	// MaxCredentialTTL refuses usernames that expire further in the future than this, plus 5
	// minutes for clock skew (default 24h).
	MaxCredentialTTL time.Duration
	// TCPIdleTimeout closes a TCP connection that has had no allocation for this long (default
	// 30s).
	TCPIdleTimeout time.Duration
	// Logger receives JSON-able structured logs (default slog.Default()).
	Logger *slog.Logger

	now func() time.Time // the clock, for tests
}

// PortRange is an inclusive range of ports.
type PortRange struct{ First, Last uint16 }

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

func (r PortRange) contains(port uint16) bool { return port >= r.First && port <= r.Last }

// withDefaults fills the zero values and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.ListenAddress == "" {
		c.ListenAddress = DefaultListenAddress
	}
	if net.ParseIP(c.ListenAddress) == nil {
		return c, fmt.Errorf("listen address %q is not an IP address", c.ListenAddress)
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("port %d is out of range", c.Port)
	}
	if c.RelayAddress == nil || c.RelayAddress.To4() == nil || c.RelayAddress.IsUnspecified() {
		return c, fmt.Errorf("relay address %v is not a specific IPv4 address", c.RelayAddress)
	}
	c.RelayAddress = c.RelayAddress.To4()
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if len(c.Secret) < MinSecretBytes {
		return c, fmt.Errorf("the master secret has %d bytes, want at least %d", len(c.Secret), MinSecretBytes)
	}
	if len(c.AllowedPeers) == 0 {
		return c, errors.New("no allowed peer networks: the gateway would relay nowhere")
	}
	for _, p := range c.AllowedPeers {
		if p.Bits() == 0 {
			return c, fmt.Errorf("allowed peer network %s is everything: that is an open relay", p)
		}
	}
	if len(c.AllowedPeerPorts) == 0 {
		var err error
		if c.AllowedPeerPorts, err = ParsePortRanges(DefaultAllowedPeerPorts); err != nil {
			return c, err
		}
	}
	if c.MaxAllocations == 0 {
		c.MaxAllocations = DefaultMaxAllocations
	}
	if c.MaxAllocationsPerUser == 0 {
		c.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if c.MaxTCPConnections == 0 {
		c.MaxTCPConnections = c.MaxAllocations
	}
	if c.MaxAllocations < 0 || c.MaxAllocationsPerUser < 0 || c.MaxTCPConnections < 0 {
		return c, errors.New("allocation limits must be positive")
	}
	if c.MaxCredentialTTL == 0 {
		c.MaxCredentialTTL = DefaultMaxCredentialTTL
	}
	if c.MaxCredentialTTL < 0 {
		return c, errors.New("the credential TTL limit must be positive")
	}
	if c.TCPIdleTimeout == 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// ParsePrefixes parses comma-separated CIDRs (a bare address is a /32 or /128).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if p, err = netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("network %q: %w", f, err)
			}
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("network %q: %w", f, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no network in %q", s)
	}
	return out, nil
}

// ParsePortRanges parses comma-separated ports and ranges ("3478,10000-10100").
func ParsePortRanges(s string) ([]PortRange, error) {
	var out []PortRange
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		first, last, isRange := strings.Cut(f, "-")
		a, err := parsePort(first)
		if err != nil {
			return nil, fmt.Errorf("port range %q: %w", f, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(last); err != nil {
				return nil, fmt.Errorf("port range %q: %w", f, err)
			}
		}
		if b < a {
			return nil, fmt.Errorf("port range %q is backwards", f)
		}
		out = append(out, PortRange{First: a, Last: b})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no port in %q", s)
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port 1..65535", s)
	}
	return uint16(n), nil
}

// ReadSecretFile reads the master secret: the file's bytes less trailing ASCII whitespace
// (spaces, tabs, CR, LF), at least MinSecretBytes of them.
func ReadSecretFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the secret file: %w", err)
	}
	secret := bytes.TrimRight(raw, " \t\r\n")
	if len(secret) == 0 {
		return nil, fmt.Errorf("the secret file %s is empty", path)
	}
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("the secret in %s has %d bytes, want at least %d", path, len(secret), MinSecretBytes)
	}
	return secret, nil
}

// DefaultRelayAddress returns the first IPv4 address, neither loopback nor link-local, of an
// interface that is up: a pod's own address.
func DefaultRelayAddress() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", iface.Name, err)
		}
		for _, a := range addrs {
			ipNet, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip := ipNet.IP.To4()
			if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				continue
			}
			return ip, nil
		}
	}
	return nil, errors.New("no non-loopback IPv4 address on any interface that is up")
}

// localIPs returns the addresses a socket bound to listen is reachable on: that address, or
// every interface's when it is unspecified.
func localIPs(listen net.IP) ([]netip.Addr, error) {
	if !listen.IsUnspecified() {
		a, _ := netip.AddrFromSlice(listen)
		return []netip.Addr{a.Unmap()}, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ipNet, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipNet.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}
