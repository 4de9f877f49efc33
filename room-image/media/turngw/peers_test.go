package turngw

import (
	"net/netip"
	"testing"
)

func TestPeerPolicy(t *testing.T) {
	p := peerPolicy{
		networks:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")},
		ports:        []PortRange{{1024, 65535}},
		selfIPs:      []netip.Addr{netip.MustParseAddr("10.1.2.3")},
		selfPort:     3478,
		selfAnyLocal: true,
	}
	for peer, want := range map[string]string{
		"10.9.8.7:40000":          "",
		"[::ffff:10.9.8.7]:40000": "", // IPv4-mapped
		"10.9.8.7:53":             refusedPort,
		"11.0.0.1:40000":          refusedAddress,
		"192.168.1.1:40000":       refusedAddress,
		"[fd00::1]:40000":         refusedAddress,
		"10.1.2.3:3478":           refusedSelf,
		"10.1.2.3:40000":          "", // another allocation's relayed port: relay to relay is fine
		"10.1.2.4:3478":           "", // another pod's TURN port
		"127.0.0.2:3478":          refusedSelf,
	} {
		if got := p.refusal(netip.MustParseAddrPort(peer)); got != want {
			t.Errorf("refusal(%s) = %q, want %q", peer, got, want)
		}
	}
	p.selfAnyLocal = false
	if got := p.refusal(netip.MustParseAddrPort("127.0.0.2:3478")); got != "" {
		t.Errorf("bound to one address, 127.0.0.2:3478 is refused: %q", got)
	}
}
