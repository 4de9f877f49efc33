package turngw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// rawClient speaks TURN by hand, to send what a well-behaved client never would (a ChannelBind
// or a Send indication toward a peer without permission).
type rawClient struct {
	t      *testing.T
	conn   *net.UDPConn
	server *net.UDPAddr
	nonce  stun.Nonce
	realm  stun.Realm
	user   stun.Username
	key    stun.MessageIntegrity
}

type peerAddress struct {
	ip   net.IP
	port int
}

func (p peerAddress) AddTo(m *stun.Message) error {
	return stun.XORMappedAddress{IP: p.ip, Port: p.port}.AddToAs(m, stun.AttrXORPeerAddress)
}

var requestedUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

func channelNumber(n uint16) stun.RawAttribute {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

func newRawClient(t *testing.T, s *Server) *rawClient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, conn: conn, server: s.UDPAddr()}
}

func (c *rawClient) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(b, c.server); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next datagram from the server, or nil after timeout.
func (c *rawClient) read(timeout time.Duration) []byte {
	c.t.Helper()
	buf := make([]byte, 2048)
	if err := c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		c.t.Fatal(err)
	}
	n, err := c.conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		c.t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

// request sends a request of method with attrs (authenticated once the client has a nonce)
// and returns the response.
func (c *rawClient) request(method stun.Method, attrs ...stun.Setter) *stun.Message {
	c.t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	if c.nonce != nil {
		setters = append(setters, c.user, c.realm, c.nonce, c.key)
	}
	setters = append(setters, stun.Fingerprint)
	req := stun.MustBuild(setters...)
	c.send(req.Raw)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b := c.read(time.Until(deadline))
		if b == nil || !stun.IsMessage(b) {
			continue
		}
		res := &stun.Message{Raw: b}
		if err := res.Decode(); err != nil {
			c.t.Fatalf("decode: %v", err)
		}
		if res.TransactionID == req.TransactionID {
			return res
		}
	}
	c.t.Fatalf("no answer to %s", method)
	return nil
}

// login allocates with the given credentials (and realm, "" for the server's).
func (c *rawClient) login(username, password, realm string) *stun.Message {
	c.t.Helper()
	res := c.request(stun.MethodAllocate, requestedUDP)
	if res.Type.Class != stun.ClassErrorResponse {
		c.t.Fatalf("unauthenticated allocate: %s, want 401", res.Type)
	}
	if err := c.nonce.GetFrom(res); err != nil {
		c.t.Fatalf("nonce: %v", err)
	}
	if err := c.realm.GetFrom(res); err != nil {
		c.t.Fatalf("realm: %v", err)
	}
	if realm != "" {
		c.realm = stun.NewRealm(realm)
	}
	c.user = stun.NewUsername(username)
	c.key = stun.NewLongTermIntegrity(username, c.realm.String(), password)
	return c.request(stun.MethodAllocate, requestedUDP)
}

func isSuccess(m *stun.Message) bool { return m.Type.Class == stun.ClassSuccessResponse }

func channelData(channel uint16, data []byte) []byte {
	b := make([]byte, 4+len(data))
	binary.BigEndian.PutUint16(b[0:2], channel)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(data)))
	copy(b[4:], data)
	return b
}

// ChannelBind, CreatePermission and Send toward a peer outside the allowed networks are all
// refused, and nothing reaches it; toward an allowed peer the same requests work. A request in
// another realm is refused.
func TestRawRequestsTowardDisallowedPeer(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.AllowedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	outside := newUDPPeer(t, "127.0.0.2", true)
	echo := newUDPPeer(t, "127.0.0.1", true)
	username, password := mint(t, "default/demo", "raw", time.Hour)

	other := newRawClient(t, s)
	if res := other.login(username, password, "another-realm"); isSuccess(res) {
		t.Error("allocated in another realm")
	}
	if s.Metrics().AuthFailures[authRealm] != 1 {
		t.Errorf("realm failures %d, want 1", s.Metrics().AuthFailures[authRealm])
	}

	c := newRawClient(t, s)
	if res := c.login(username, password, ""); !isSuccess(res) {
		t.Fatalf("allocate: %s", res)
	}
	outsidePeer := peerAddress{ip: outside.addr().IP, port: outside.addr().Port}
	if res := c.request(stun.MethodChannelBind, channelNumber(0x4000), outsidePeer); isSuccess(res) {
		t.Error("ChannelBind toward 127.0.0.2 succeeded")
	}
	if res := c.request(stun.MethodCreatePermission, outsidePeer); isSuccess(res) {
		t.Error("CreatePermission toward 127.0.0.2 succeeded")
	}
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		outsidePeer, stun.RawAttribute{Type: stun.AttrData, Value: []byte("leak")}, stun.Fingerprint)
	c.send(send.Raw)
	c.send(channelData(0x4000, []byte("leak")))

	echoPeer := peerAddress{ip: echo.addr().IP, port: echo.addr().Port}
	if res := c.request(stun.MethodChannelBind, channelNumber(0x4001), echoPeer); !isSuccess(res) {
		t.Fatalf("ChannelBind toward the allowed peer: %s", res)
	}
	c.send(channelData(0x4001, []byte("ping")))
	if got := c.read(5 * time.Second); !bytes.Equal(got, channelData(0x4001, []byte("ping"))) {
		t.Errorf("echo through the channel: %x", got)
	}

	time.Sleep(200 * time.Millisecond)
	if n := outside.received(); n != 0 {
		t.Errorf("the disallowed peer received %d datagrams", n)
	}
	if n := s.Metrics().PeerRefusals[refusedAddress]; n < 2 {
		t.Errorf("%d address refusals, want at least 2 (ChannelBind, CreatePermission)", n)
	}
}
