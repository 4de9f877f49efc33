package turngw

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// allocate makes an allocation or fails the test.
func allocate(t *testing.T, s *Server, username, password string, overTCP bool) net.PacketConn {
	t.Helper()
	relayed, err := newClient(t, s, username, password, overTCP).Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	t.Cleanup(func() { _ = relayed.Close() })
	return relayed
}

// roundTrip sends msg to peer through relayed and waits for the echo.
func roundTrip(t *testing.T, relayed net.PacketConn, peer net.Addr, msg []byte) {
	t.Helper()
	if _, err := relayed.WriteTo(msg, peer); err != nil {
		t.Fatalf("relay to %s: %v", peer, err)
	}
	buf := make([]byte, 1500)
	if err := relayed.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, from, err := relayed.ReadFrom(buf)
	if err != nil {
		t.Fatalf("echo from %s: %v", peer, err)
	}
	if !bytes.Equal(buf[:n], msg) || from.String() != peer.String() {
		t.Fatalf("got %q from %s, want %q from %s", buf[:n], from, msg, peer)
	}
}

// A client with a valid credential allocates on the relay address and relays UDP to an allowed
// peer and back, over UDP and over TCP to the gateway; the allocations are counted, and
// released when the clients leave.
func TestRelayToAllowedPeer(t *testing.T) {
	s := newTestServer(t, nil)
	echo := newUDPPeer(t, "127.0.0.1", true)
	for _, overTCP := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", overTCP), func(t *testing.T) {
			username, password := mint(t, "default/demo", "viewer-1", time.Hour)
			relayed := allocate(t, s, username, password, overTCP)
			addr := relayed.LocalAddr().(*net.UDPAddr)
			if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) || addr.Port == s.UDPAddr().Port {
				t.Errorf("relayed address %s, want 127.0.0.1 on a port of its own", addr)
			}
			// Enough packets that pion binds a channel: data indications first, channel data
			// after.
			for i := range 5 {
				roundTrip(t, relayed, echo.addr(), []byte(fmt.Sprintf("hello %d", i)))
				time.Sleep(50 * time.Millisecond)
			}
			m := s.Metrics()
			if m.Allocations != 1 || m.BytesToPeers == 0 || m.BytesFromPeers == 0 {
				t.Errorf("metrics %+v, want 1 allocation and relayed bytes both ways", m)
			}
			if err := relayed.Close(); err != nil {
				t.Errorf("deallocate: %v", err)
			}
			eventually(t, 5*time.Second, "the allocation is released", func() bool { return s.Metrics().Allocations == 0 })
		})
	}
}

// CreatePermission toward a peer outside the allowed networks is refused, and nothing reaches
// that peer; datagrams toward a port outside the allowed ports are dropped.
func TestRefusesDisallowedPeers(t *testing.T) {
	allowed := newUDPPeer(t, "127.0.0.1", true)
	s := newTestServer(t, func(c *Config) {
		c.AllowedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.AllowedPeerPorts = []PortRange{{First: uint16(allowed.addr().Port), Last: uint16(allowed.addr().Port)}}
	})
	outside := newUDPPeer(t, "127.0.0.2", true)   // not in 127.0.0.1/32
	otherPort := newUDPPeer(t, "127.0.0.1", true) // allowed address, port not allowed

	username, password := mint(t, "default/demo", "viewer-1", time.Hour)
	client := newClient(t, s, username, password, false)
	relayed, err := client.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer relayed.Close()

	if err := client.CreatePermission(outside.addr()); err == nil {
		t.Error("CreatePermission toward 127.0.0.2 succeeded")
	}
	if _, err := relayed.WriteTo([]byte("leak"), outside.addr()); err == nil {
		t.Error("relaying toward 127.0.0.2 succeeded")
	}
	// Permissions are per address: this one is granted, but the datagrams are dropped.
	for range 3 {
		if _, err := relayed.WriteTo([]byte("leak"), otherPort.addr()); err != nil {
			t.Logf("toward a port outside the allowed ones: %v", err)
		}
	}
	roundTrip(t, relayed, allowed.addr(), []byte("still relays to the allowed peer"))

	eventually(t, 5*time.Second, "refusals counted", func() bool {
		r := s.Metrics().PeerRefusals
		return r[refusedAddress] >= 1 && r[refusedPort] >= 3
	})
	time.Sleep(200 * time.Millisecond)
	if outside.received() != 0 || otherPort.received() != 0 {
		t.Errorf("refused peers received %d and %d datagrams", outside.received(), otherPort.received())
	}
	if s.Metrics().Allocations != 1 {
		t.Errorf("%d allocations, want 1 (the refusals must not end it)", s.Metrics().Allocations)
	}
}

// Relayed datagrams toward the gateway's own TURN port (which would come back in as a client's
// requests) are dropped; the allocation goes on.
func TestRefusesRelayToItself(t *testing.T) {
	s := newTestServer(t, nil)
	echo := newUDPPeer(t, "127.0.0.1", true)
	username, password := mint(t, "default/demo", "viewer-1", time.Hour)
	relayed := allocate(t, s, username, password, false)
	self := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.UDPAddr().Port}
	for range 3 {
		if _, err := relayed.WriteTo([]byte("loop"), self); err != nil {
			t.Logf("toward the gateway's own port: %v", err)
		}
	}
	roundTrip(t, relayed, echo.addr(), []byte("still relays"))
	eventually(t, 5*time.Second, "self refusals counted", func() bool { return s.Metrics().PeerRefusals[refusedSelf] >= 3 })
	if m := s.Metrics(); m.Allocations != 1 {
		t.Errorf("%d allocations, want only the client's", m.Allocations)
	}
}

// Expired, malformed, too long-lived credentials and wrong passwords (another room's key, the
// right room's key on another username) are refused, and counted.
func TestRefusesBadCredentials(t *testing.T) {
	s := newTestServer(t, nil)
	good, goodPassword := mint(t, "default/demo", "viewer-1", time.Hour)
	expired, expiredPassword := mint(t, "default/demo", "viewer-1", -time.Minute)
	tooLong, tooLongPassword := mint(t, "default/demo", "viewer-1", 48*time.Hour)
	otherRoom := good
	otherRoomPassword := Password(RoomKey(testSecret, "default/other"), good) // room other's key
	forged := strings.Replace(good, "default/demo", "default/other", 1)       // demo's key, other's room
	forgedPassword := Password(RoomKey(testSecret, "default/demo"), forged)
	for _, c := range []struct {
		name, username, password, reason string
	}{
		{"expired", expired, expiredPassword, authExpired},
		{"ttl over the limit", tooLong, tooLongPassword, authTooLong},
		{"malformed", "default/demo:viewer-1", goodPassword, authMalformed},
		{"bad room", strings.Replace(good, "default/demo", "Default/demo", 1), goodPassword, authMalformed},
		{"another room's key", otherRoom, otherRoomPassword, authPassword},
		{"a room's key minting for another", forged, forgedPassword, authPassword},
		{"wrong password", good, goodPassword + "x", authPassword},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.Metrics().AuthFailures[c.reason]
			_, err := newClient(t, s, c.username, c.password, false).Allocate()
			if err == nil {
				t.Fatal("allocated")
			}
			if after := s.Metrics().AuthFailures[c.reason]; after <= before {
				t.Errorf("auth failures %q: %d, want more than %d (err %v)", c.reason, after, before, err)
			}
		})
	}
	if s.Metrics().Allocations != 0 {
		t.Errorf("%d allocations after refusals", s.Metrics().Allocations)
	}
	allocate(t, s, good, goodPassword, false)
	// The longest TTL, minted on a node whose clock runs a minute ahead, still passes.
	longest, longestPassword := mint(t, "default/demo", "viewer-2", DefaultMaxCredentialTTL+time.Minute)
	allocate(t, s, longest, longestPassword, false)
}

// A user (room and user ID, whatever the expiry) gets at most --max-allocations-per-user
// allocations, and everyone together at most --max-allocations; a closed allocation frees its
// slot.
func TestAllocationQuotas(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.MaxAllocations = 3
		c.MaxAllocationsPerUser = 2
	})
	userA, passA := mint(t, "default/demo", "a", time.Hour)
	userA2, passA2 := mint(t, "default/demo", "a", 2*time.Hour) // same user, another expiry
	userB, passB := mint(t, "default/demo", "b", time.Hour)
	userC, passC := mint(t, "default/other", "a", time.Hour) // same user ID, another room

	first := allocate(t, s, userA, passA, false)
	allocate(t, s, userA, passA, true)
	if _, err := newClient(t, s, userA2, passA2, false).Allocate(); turnErrorCode(err) != 486 {
		t.Errorf("user a's third allocation: %v, want 486 Allocation Quota Reached", err)
	}
	allocate(t, s, userB, passB, false)
	if _, err := newClient(t, s, userC, passC, false).Allocate(); turnErrorCode(err) != 486 {
		t.Errorf("the fourth allocation in total: %v, want 486", err)
	}
	m := s.Metrics()
	if m.Allocations != 3 || m.QuotaRefusals[quotaUser] != 1 || m.QuotaRefusals[quotaTotal] != 1 {
		t.Errorf("metrics %+v, want 3 allocations, one refusal per limit", m)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the slot is freed", func() bool { return s.Metrics().Allocations == 2 })
	allocate(t, s, userC, passC, false)
}

// Concurrent clients (TCP ones are served in parallel by pion) cannot overshoot the total
// limit.
func TestQuotaUnderConcurrency(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.MaxAllocations = 10
		c.MaxAllocationsPerUser = 100
		c.MaxTCPConnections = 100
	})
	const clients = 30
	results := make(chan error, clients)
	for i := range clients {
		username, password := mint(t, "default/demo", fmt.Sprintf("u%d", i), time.Hour)
		client := newClient(t, s, username, password, i%2 == 0)
		go func() {
			relayed, err := client.Allocate()
			if err == nil {
				t.Cleanup(func() { _ = relayed.Close() })
			}
			results <- err
		}()
	}
	ok, refused := 0, 0
	for range clients {
		switch err := <-results; {
		case err == nil:
			ok++
		case turnErrorCode(err) == 486:
			refused++
		default:
			t.Errorf("allocate: %v", err)
		}
	}
	if ok != 10 || refused != clients-10 || s.Metrics().Allocations != 10 {
		t.Errorf("%d allocated, %d refused, %d open; want 10, %d, 10", ok, refused, s.Metrics().Allocations, clients-10)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	s := newTestServer(t, nil)
	username, password := mint(t, "default/demo", "viewer-1", time.Hour)
	allocate(t, s, username, password, false)
	_, _ = newClient(t, s, username, password+"x", false).Allocate()

	web := httptest.NewServer(s.Handler())
	defer web.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(web.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"# TYPE streamroom_turn_allocations gauge\nstreamroom_turn_allocations 1\n",
		"# TYPE streamroom_turn_auth_failures_total counter\n",
		`streamroom_turn_auth_failures_total{reason="password"} 1` + "\n",
		`streamroom_turn_auth_failures_total{reason="expired"} 0` + "\n",
		`streamroom_turn_relayed_bytes_total{direction="to_peer"} `,
		`streamroom_turn_peer_refusals_total{reason="address"} 0` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if code, _ := get("/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d", code)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz after Close: %d, want 503", code)
	}
}

// If pion stops reading the TURN port while the gateway is not closing, /healthz fails (so that
// Kubernetes restarts the pod).
func TestHealthFailsWhenListenerStops(t *testing.T) {
	s := newTestServer(t, nil)
	web := httptest.NewServer(s.Handler())
	defer web.Close()
	if err := s.udp.UDPConn.Close(); err != nil { // under pion's feet
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "/healthz fails", func() bool {
		resp, err := http.Get(web.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
}

func TestConfigRefusals(t *testing.T) {
	base := Config{
		RelayAddress: net.IPv4(127, 0, 0, 1),
		Secret:       testSecret,
		AllowedPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:       testLogger(),
	}
	for name, mod := range map[string]func(*Config){
		"short secret":      func(c *Config) { c.Secret = []byte("too short") },
		"no peers":          func(c *Config) { c.AllowedPeers = nil },
		"open relay":        func(c *Config) { c.AllowedPeers = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} },
		"no relay address":  func(c *Config) { c.RelayAddress = nil },
		"IPv6 relay":        func(c *Config) { c.RelayAddress = net.ParseIP("::1") },
		"unspecified relay": func(c *Config) { c.RelayAddress = net.IPv4zero },
		"bad listen":        func(c *Config) { c.ListenAddress = "localhost" },
	} {
		cfg := base
		mod(&cfg)
		if s, err := New(cfg); err == nil {
			_ = s.Close()
			t.Errorf("%s: started", name)
		}
	}
}

// A TCP connection that makes no allocation is closed after the idle timeout.
func TestIdleTCPConnectionClosed(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.TCPIdleTimeout = 300 * time.Millisecond })
	conn, err := net.DialTCP("tcp4", nil, s.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read: %v, want EOF (closed by the gateway)", err)
	}
}

// TCP connections past the limit are closed at once, and counted.
func TestTCPConnectionLimit(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxTCPConnections = 2 })
	var conns []*net.TCPConn
	for range 3 {
		conn, err := net.DialTCP("tcp4", nil, s.TCPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	if err := conns[2].SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[2].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("third connection: read %v, want EOF", err)
	}
	if m := s.Metrics(); m.TCPConnections != 2 || m.TCPRefusals != 1 {
		t.Errorf("%d TCP connections, %d refused; want 2 and 1", m.TCPConnections, m.TCPRefusals)
	}
}

// Closing the gateway ends every goroutine it and pion started, with allocations open over
// UDP and TCP.
func TestCloseEndsGoroutines(t *testing.T) {
	checkGoroutines(t, func() (during int) {
		t.Run("session", func(t *testing.T) {
			s := newTestServer(t, nil)
			echo := newUDPPeer(t, "127.0.0.1", true)
			username, password := mint(t, "default/demo", "viewer-1", time.Hour)
			for _, overTCP := range []bool{false, true} {
				relayed, err := newClient(t, s, username, password, overTCP).Allocate()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = relayed.Close() })
				roundTrip(t, relayed, echo.addr(), []byte("hello"))
			}
			during = runtime.NumGoroutine()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
		return during
	})
}
