package turngw

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"streamroom.dev/media/internal/pionlog"
)

var testSecret = []byte("test-master-secret-of-at-least-32-bytes")

func testLogger() *slog.Logger {
	if os.Getenv("MEDIA_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// newTestServer starts a gateway on 127.0.0.1 (a free port), relaying on 127.0.0.1 toward
// 127.0.0.0/8; mod may change the config first. It is closed when the test ends.
func newTestServer(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		ListenAddress: "127.0.0.1",
		RelayAddress:  net.IPv4(127, 0, 0, 1),
		Secret:        testSecret,
		AllowedPeers:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:        testLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("new TURN gateway: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the TURN gateway: %v", err)
		}
	})
	return s
}

// mint makes credentials for user in room, valid for ttl, as the room's server would.
func mint(t *testing.T, room, user string, ttl time.Duration) (username, password string) {
	t.Helper()
	username, password, err := Mint(RoomKey(testSecret, room), room, user, time.Now().Add(ttl))
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return username, password
}

// newClient makes a pion TURN client of s over UDP, or TCP.
func newClient(t *testing.T, s *Server, username, password string, overTCP bool) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	if overTCP {
		c, err := net.DialTCP("tcp4", nil, s.TCPAddr())
		if err != nil {
			t.Fatalf("dial TURN over TCP: %v", err)
		}
		conn = turn.NewSTUNConn(c)
	} else {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("client socket: %v", err)
		}
		conn = c
	}
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: s.UDPAddr().String(),
		TURNServerAddr: s.UDPAddr().String(),
		Conn:           conn,
		Username:       username,
		Password:       password,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  pionlog.Factory{Logger: testLogger()},
	})
	if err != nil {
		_ = conn.Close()
		t.Fatalf("new TURN client: %v", err)
	}
	if err := client.Listen(); err != nil {
		client.Close()
		_ = conn.Close()
		t.Fatalf("TURN client listen: %v", err)
	}
	t.Cleanup(func() {
		client.Close()
		_ = conn.Close()
	})
	return client
}

// turnErrorCode returns the TURN error code in err, or 0.
func turnErrorCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// udpPeer is a UDP socket that records what it receives and, when echo is set, sends it back.
type udpPeer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func newUDPPeer(t *testing.T, ip string, echo bool) *udpPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("peer socket on %s: %v", ip, err)
	}
	p := &udpPeer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.got = append(p.got, append([]byte(nil), buf[:n]...))
			p.mu.Unlock()
			if echo {
				_, _ = conn.WriteToUDP(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-p.done
	})
	return p
}

func (p *udpPeer) addr() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

func (p *udpPeer) received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkGoroutines fails t if, a few seconds after f, more goroutines run than before it. f
// returns how many ran at its busiest (to show that the check checked something).
func checkGoroutines(t *testing.T, f func() int) {
	t.Helper()
	before := runtime.NumGoroutine()
	during := f()
	if during <= before {
		t.Fatalf("%d goroutines before, %d during: nothing to check", before, during)
	}
	defer func() { t.Logf("goroutines: %d before, %d during, %d after", before, during, runtime.NumGoroutine()) }()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
