package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"streamroom.dev/media/internal/harness"
	"streamroom.dev/media/swarm"
)

// env is a relay and a swarm in this process, on loopback, driven through their control
// protocols by a harness.
type env struct {
	t     *testing.T
	relay *Relay
	h     *harness.Harness
	ctx   context.Context
}

func testLogger() *slog.Logger {
	if os.Getenv("MEDIA_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// newEnv starts a relay with cfg (on 127.0.0.1) and a swarm. setup, if not nil, runs on the
// relay before it serves (test hooks).
func newEnv(t *testing.T, cfg Config, setup func(*Relay)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cfg.ListenAddress = "127.0.0.1"
	cfg.IncludeLoopback = true
	cfg.Logger = testLogger()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("new relay: %v", err)
	}
	if setup != nil {
		setup(r)
	}
	sw, err := swarm.New(swarm.Config{Logger: testLogger()})
	if err != nil {
		t.Fatalf("new swarm: %v", err)
	}
	relayIn, relayInW := io.Pipe()
	relayOutR, relayOut := io.Pipe()
	swarmIn, swarmInW := io.Pipe()
	swarmOutR, swarmOut := io.Pipe()
	var wg sync.WaitGroup
	serve := func(name string, run func() error, out *io.PipeWriter) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			_ = out.Close()
		}()
	}
	serve("relay", func() error { return r.Serve(context.Background(), relayIn, relayOut) }, relayOut)
	serve("swarm", func() error { return sw.Serve(context.Background(), swarmIn, swarmOut) }, swarmOut)
	t.Cleanup(func() {
		_ = relayInW.Close()
		_ = swarmInW.Close()
		wg.Wait()
	})

	h := harness.New(relayInW, relayOutR, swarmInW, swarmOutR)
	if _, err := h.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, relay: r, h: h, ctx: ctx}
}

func (e *env) relayStats() Stats {
	e.t.Helper()
	var st Stats
	if err := e.h.Relay.Call(e.ctx, "stats", nil, &st); err != nil {
		e.t.Fatalf("relay stats: %v", err)
	}
	return st
}

func (e *env) swarmStats() swarm.Stats {
	e.t.Helper()
	var st swarm.Stats
	if err := e.h.Swarm.Call(e.ctx, "stats", nil, &st); err != nil {
		e.t.Fatalf("swarm stats: %v", err)
	}
	return st
}

// publish starts a synthetic source and waits until the relay has it connected. It returns
// the source's peer ID and the relay's answer.
func (e *env) publishAnswer(bitrate int) (string, string) {
	e.t.Helper()
	id, answer, err := e.h.Publish(e.ctx, bitrate, 30)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.h.WaitState(e.ctx, harness.RelaySide, id, "connected"); err != nil {
		e.t.Fatal(err)
	}
	return id, answer
}

func (e *env) publish(bitrate int) string {
	e.t.Helper()
	id, _ := e.publishAnswer(bitrate)
	return id
}

// addViewers joins viewers v-<from>..v-<from+n-1>, parallel at a time, and waits until all are
// connected.
func (e *env) addViewers(from, n, parallel int) []string {
	e.t.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = fmt.Sprintf("v-%d", from+i)
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			errs[i] = e.h.AddViewer(e.ctx, ids[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		e.t.Fatal(err)
	}
	for _, id := range ids {
		if err := e.h.WaitState(e.ctx, harness.SwarmSide, id, "connected"); err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

// waitVideo waits until every viewer in the swarm has received video.
func (e *env) waitVideo() {
	e.t.Helper()
	e.eventually(20*time.Second, "every viewer receives video", func() bool {
		for _, v := range e.swarmStats().PerViewer {
			if v.FirstVideoAt == 0 {
				return false
			}
		}
		return true
	})
}

func (e *env) eventually(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopPublisher closes the swarm's publisher and lets retransmissions in flight land, so that
// the viewers' loss counts are final.
func (e *env) stopPublisher(id string) {
	e.t.Helper()
	if err := e.h.Swarm.Call(e.ctx, "close", map[string]any{"id": id}, nil); err != nil {
		e.t.Fatalf("close publisher: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
}

func (e *env) publisherStats(id string) swarm.PublisherStats {
	e.t.Helper()
	for _, p := range e.swarmStats().Publishers {
		if p.Peer == id {
			return p
		}
	}
	e.t.Fatalf("no publisher %s in the swarm", id)
	return swarm.PublisherStats{}
}
