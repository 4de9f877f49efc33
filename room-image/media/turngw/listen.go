package turngw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var errClosing = errors.New("the TURN gateway is closing")

// activity counts what is still running under pion's goroutines (the listeners' readers, the
// TCP connections' readers, the relayed sockets), so that Close can wait for it to end.
type activity struct {
	mu      sync.Mutex
	n       int
	closing bool
	idle    chan struct{} // closed when closing and n is 0
}

func newActivity() *activity { return &activity{idle: make(chan struct{})} }

// add counts one more; false once closing.
func (a *activity) add() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.n++
	return true
}

func (a *activity) done() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n--
	if a.n == 0 && a.closing {
		close(a.idle)
	}
}

// close refuses what comes next.
func (a *activity) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closing {
		a.closing = true
		if a.n == 0 {
			close(a.idle)
		}
	}
}

// wait waits until everything counted has ended (after close).
func (a *activity) wait(ctx context.Context) error {
	select {
	case <-a.idle:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		n := a.n
		a.mu.Unlock()
		return fmt.Errorf("%d sockets still open: %w", n, ctx.Err())
	}
}

// listenBoth binds UDP and TCP on the same port of ip (a free one for port 0).
func listenBoth(ip net.IP, port int) (*net.UDPConn, *net.TCPListener, error) {
	udpNet, tcpNet := "udp", "tcp"
	if ip.To4() != nil {
		udpNet, tcpNet = "udp4", "tcp4"
	}
	tries := 1
	if port == 0 {
		tries = 20 // the free UDP port may be taken for TCP
	}
	var lastErr error
	for range tries {
		udp, err := net.ListenUDP(udpNet, &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return nil, nil, fmt.Errorf("listen on UDP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
		}
		udpPort := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.ListenTCP(tcpNet, &net.TCPAddr{IP: ip, Port: udpPort})
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		lastErr = fmt.Errorf("listen on TCP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(udpPort)), err)
		if port != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, lastErr
}

// udpListener is the TURN port's UDP socket; its reader's end is counted.
type udpListener struct {
	*net.UDPConn
	s    *Server
	once sync.Once
}

func (u *udpListener) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := u.UDPConn.ReadFrom(p)
	if err != nil {
		// pion's reader stops at any error: the UDP side is over.
		u.once.Do(func() {
			u.s.listenerEnded("UDP", err)
			u.s.act.done()
		})
	}
	return n, addr, err
}

// tcpListener is the TURN port's TCP listener: it bounds and tracks the connections.
type tcpListener struct {
	*net.TCPListener
	s    *Server
	once sync.Once
}

func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPListener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !errors.Is(err, net.ErrClosed) && isTemporaryAcceptError(err) {
				// Out of file descriptors and the like: wait a little instead of ending the
				// TCP side for good.
				l.s.limited.log("TCP accept failed, retrying", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			l.once.Do(func() {
				l.s.listenerEnded("TCP", err)
				l.s.act.done()
			})
			return nil, err
		}
		tc, ok := l.s.conns.add(c)
		if !ok {
			_ = c.Close()
			continue
		}
		return tc, nil
	}
}

func isTemporaryAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// tcpWriteTimeout bounds one write to a TCP client: one that does not read is closed.
const tcpWriteTimeout = 5 * time.Second

// tcpConn is a TURN client's TCP connection.
type tcpConn struct {
	net.Conn
	s        *Server
	key      string
	readOnce sync.Once

	// guarded by conns.mu
	allocated bool
	idleSince time.Time
}

func (c *tcpConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.readOnce.Do(func() {
			c.s.conns.remove(c)
			c.s.act.done()
		})
	}
	return n, err
}

func (c *tcpConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, fmt.Errorf("TCP write deadline: %w", err)
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.s.log.Info("TCP client does not read: closing it", "client", c.RemoteAddr().String())
			_ = c.Conn.Close()
		}
	}
	return n, err
}

// tcpConns tracks the open TCP connections: at most max at once; one with no allocation for
// the idle timeout is closed.
type tcpConns struct {
	s   *Server
	max int

	mu    sync.Mutex
	conns map[string]*tcpConn
}

func connKey(network string, addr net.Addr) string { return network + "|" + addr.String() }

func (t *tcpConns) add(c net.Conn) (*tcpConn, bool) {
	tc := &tcpConn{Conn: c, s: t.s, key: connKey("tcp", c.RemoteAddr()), idleSince: t.s.cfg.now()}
	t.mu.Lock()
	full := len(t.conns) >= t.max
	if !full && t.s.act.add() {
		t.conns[tc.key] = tc
		t.mu.Unlock()
		return tc, true
	}
	t.mu.Unlock()
	if full {
		t.s.metrics.tcpRefusals.Add(1)
		t.s.limited.log("TCP connection refused: too many", "client", c.RemoteAddr().String(), "max", t.max)
	}
	return nil, false
}

func (t *tcpConns) remove(c *tcpConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns[c.key] == c {
		delete(t.conns, c.key)
	}
}

func (t *tcpConns) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// allocated records that the connection from src has (or no longer has) an allocation.
func (t *tcpConns) allocated(src net.Addr, yes bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.conns[connKey("tcp", src)]; c != nil {
		c.allocated = yes
		c.idleSince = t.s.cfg.now()
	}
}

// closeIdle closes the connections that have had no allocation since before cutoff.
func (t *tcpConns) closeIdle(cutoff time.Time) {
	var idle []*tcpConn
	t.mu.Lock()
	for _, c := range t.conns {
		if !c.allocated && c.idleSince.Before(cutoff) {
			idle = append(idle, c)
		}
	}
	t.mu.Unlock()
	for _, c := range idle {
		t.s.log.Debug("closing idle TCP connection", "client", c.RemoteAddr().String())
		_ = c.Conn.Close()
	}
}

func (t *tcpConns) closeAll() {
	t.mu.Lock()
	all := make([]*tcpConn, 0, len(t.conns))
	for _, c := range t.conns {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		_ = c.Conn.Close()
	}
}
