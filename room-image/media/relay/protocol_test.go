package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Lines that are not requests are answered with bad_request and the relay goes on; it stops
// when its input ends.
func TestControlErrorsKeepTheRelayRunning(t *testing.T) {
	r, err := New(Config{ListenAddress: "127.0.0.1", IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	input := "garbage\n" +
		`{"id": 1, "method": "nope"}` + "\n" +
		`{"id": 2, "method": "publish", "params": {"peer": 3}}` + "\n" +
		`{"id": 3, "method": "stats"}` + "\n"
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- r.Serve(context.Background(), strings.NewReader(input), outW)
		_ = outW.Close()
	}()
	var lines []map[string]any
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if len(lines) != 5 || lines[0]["event"] != "ready" {
		t.Fatalf("output %v", lines)
	}
	for i, id := range []any{nil, 1.0, 2.0} {
		m := lines[i+1]
		if m["id"] != id || m["error"].(map[string]any)["code"] != "bad_request" {
			t.Errorf("answer %v, want bad_request for id %v", m, id)
		}
	}
	if res, ok := lines[4]["result"].(map[string]any); !ok || res["rssBytes"] == nil || res["cpuSeconds"] == nil {
		t.Errorf("stats answer %v", lines[4])
	}
}

// Closing the relay and the swarm ends every goroutine they started.
func TestCloseEndsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("session", func(t *testing.T) {
		e := newEnv(t, Config{}, nil)
		e.publish(500_000)
		e.addViewers(0, 3, 3)
		e.waitVideo()
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after closing:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The host candidates carry the announced address instead of the interface's, and with
// --tcp-port there is also a passive ICE-TCP candidate on that port.
func TestCandidates(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // with %d for the port
	}{
		{"udp", Config{}, "1 udp 2130706431 127.0.0.1 %d typ host"},
		{"announced", Config{AnnounceAddresses: []string{"203.0.113.7"}}, "203.0.113.7 %d typ host"},
		{"tcp", Config{TCPPort: tcpPort}, "127.0.0.1 %d typ host tcptype passive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg, nil)
			candidates := make(chan string, 16)
			e.h.OnRelayCandidate = func(_ string, c json.RawMessage) {
				var init struct{ Candidate string }
				if json.Unmarshal(c, &init) == nil {
					candidates <- init.Candidate
				}
			}
			if err := e.h.Relay.Call(e.ctx, "subscribe", map[string]any{"peer": "v"}, nil); err != nil {
				t.Fatal(err)
			}
			port := e.relay.UDPPort()
			if tc.cfg.TCPPort != 0 {
				port = tc.cfg.TCPPort
			}
			want := fmt.Sprintf(tc.want, port)
			deadline := time.After(5 * time.Second)
			for {
				select {
				case c := <-candidates:
					if strings.Contains(c, want) {
						return
					}
				case <-deadline:
					t.Fatalf("no candidate with %q", want)
				}
			}
		})
	}
}
