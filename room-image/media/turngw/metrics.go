package turngw

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Authentication failure reasons, the reason label of streamroom_turn_auth_failures_total.
const (
	authMalformed = "malformed" // not <expiry>:<namespace>/<name>:<user id>
	authExpired   = "expired"   // the expiry has passed
	authTooLong   = "ttl"       // the expiry is further away than the TTL limit
	authRealm     = "realm"     // another realm
	authPassword  = "password"  // the message integrity does not match (wrong password)
)

// Quota refusal limits, the limit label of streamroom_turn_quota_refusals_total.
const (
	quotaUser  = "user"
	quotaTotal = "total"
)

type metrics struct {
	authFailures   map[string]*atomic.Uint64
	peerRefusals   map[string]*atomic.Uint64
	quotaRefusals  map[string]*atomic.Uint64
	tcpRefusals    atomic.Uint64
	bytesToPeers   atomic.Uint64
	bytesFromPeers atomic.Uint64
}

func counters(labels ...string) map[string]*atomic.Uint64 {
	m := make(map[string]*atomic.Uint64, len(labels))
	for _, l := range labels {
		m[l] = new(atomic.Uint64)
	}
	return m
}

func newMetrics() *metrics {
	return &metrics{
		authFailures:  counters(authMalformed, authExpired, authTooLong, authRealm, authPassword),
		peerRefusals:  counters(refusedAddress, refusedPort, refusedSelf),
		quotaRefusals: counters(quotaUser, quotaTotal),
	}
}

// Metrics is a snapshot of the gateway's counters.
type Metrics struct {
	Allocations    int               // open now
	TCPConnections int               // open now
	AuthFailures   map[string]uint64 // by reason
	PeerRefusals   map[string]uint64 // by reason
	QuotaRefusals  map[string]uint64 // by limit
	TCPRefusals    uint64            // TCP connections refused (too many)
	BytesToPeers   uint64            // relayed from clients to peers
	BytesFromPeers uint64            // relayed from peers to clients
}

func snapshot(m map[string]*atomic.Uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v.Load()
	}
	return out
}

// Metrics returns the counters now.
func (s *Server) Metrics() Metrics {
	return Metrics{
		Allocations:    s.quota.allocations(),
		TCPConnections: s.conns.count(),
		AuthFailures:   snapshot(s.metrics.authFailures),
		PeerRefusals:   snapshot(s.metrics.peerRefusals),
		QuotaRefusals:  snapshot(s.metrics.quotaRefusals),
		TCPRefusals:    s.metrics.tcpRefusals.Load(),
		BytesToPeers:   s.metrics.bytesToPeers.Load(),
		BytesFromPeers: s.metrics.bytesFromPeers.Load(),
	}
}

// Handler serves GET /healthz (200 "ok" while the gateway serves, 503 once it is closing or if
// a listener stopped) and GET /metrics (Prometheus text format).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch {
		case s.closed.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "closing\n")
			return
		case s.failed.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "a TURN listener stopped\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := writeMetrics(w, s.Metrics()); err != nil {
			s.log.Debug("metrics not written", "err", err)
		}
	})
	return mux
}

func writeMetrics(w io.Writer, m Metrics) error {
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	family := func(name, typ, help string) {
		p("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	labelled := func(name, label string, values map[string]uint64) {
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("%s{%s=%q} %d\n", name, label, k, values[k])
		}
	}
	family("streamroom_turn_allocations", "gauge", "Relayed allocations open now.")
	p("streamroom_turn_allocations %d\n", m.Allocations)
	family("streamroom_turn_tcp_connections", "gauge", "TURN clients' TCP connections open now.")
	p("streamroom_turn_tcp_connections %d\n", m.TCPConnections)
	family("streamroom_turn_auth_failures_total", "counter", "Refused TURN credentials, by reason.")
	labelled("streamroom_turn_auth_failures_total", "reason", m.AuthFailures)
	family("streamroom_turn_peer_refusals_total", "counter", "Permissions and relayed datagrams refused by the peer policy, by reason.")
	labelled("streamroom_turn_peer_refusals_total", "reason", m.PeerRefusals)
	family("streamroom_turn_quota_refusals_total", "counter", "Allocations refused by a limit (486 Allocation Quota Reached), by limit.")
	labelled("streamroom_turn_quota_refusals_total", "limit", m.QuotaRefusals)
	family("streamroom_turn_tcp_refusals_total", "counter", "TCP connections refused because too many were open.")
	p("streamroom_turn_tcp_refusals_total %d\n", m.TCPRefusals)
	family("streamroom_turn_relayed_bytes_total", "counter", "UDP payload bytes relayed, by direction.")
	labelled("streamroom_turn_relayed_bytes_total", "direction", map[string]uint64{
		"to_peer":   m.BytesToPeers,
		"from_peer": m.BytesFromPeers,
	})
	return err
}

// logLimiter lets through at most burst log lines per interval, and then says how many it
// held back: refusals can be provoked by anyone, and must not flood the logs.
type logLimiter struct {
	out      *slog.Logger
	interval time.Duration
	burst    int

	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

func (l *logLimiter) log(msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	heldBack := 0
	if now.Sub(l.window) >= l.interval {
		heldBack = l.suppressed
		l.window, l.n, l.suppressed = now, 0, 0
	}
	l.n++
	ok := l.n <= l.burst
	if !ok {
		l.suppressed++
	}
	l.mu.Unlock()
	if heldBack > 0 {
		l.out.Info("similar log lines were held back", "count", heldBack, "interval", l.interval.String())
	}
	if ok {
		l.out.Info(msg, args...)
	}
}
