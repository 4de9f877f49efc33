package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"streamroom.dev/media/internal/harness"
	"streamroom.dev/media/swarm"
)

type benchConfig struct {
	relayPath string
	viewers   []int
	duration  time.Duration
	bitrate   int
	fps       int
	swarm     swarm.Config
}

// relayStats is the part of the relay's stats result the benchmark reads.
type relayStats struct {
	Viewers        int     `json:"viewers"`
	PacketsOut     uint64  `json:"packetsOut"`
	PacketsDropped uint64  `json:"packetsDropped"`
	Retransmits    uint64  `json:"retransmits"`
	CPUSeconds     float64 `json:"cpuSeconds"`
	RSSBytes       int64   `json:"rssBytes"`
}

type benchRow struct {
	viewers              int
	load                 string
	cpuPct               float64
	rss, rssBase         int64
	lossPct              float64
	p50, p99             float64
	firstP50, firstP99   float64 // join → first RTP packet (audio comes at once)
	joinP50, joinP99     float64 // join → first video packet (the next key frame)
	dropped, retransmits uint64
}

// runBenchmark measures one fresh relay process per row: a synthetic broadcast, then N viewers;
// once all are connected and settled, it counts for the duration.
func runBenchmark(ctx context.Context, cfg benchConfig, out io.Writer) error {
	fmt.Fprintf(out, "relay %s, %d bit/s at %d fps, %s per row, all on loopback\n\n", cfg.relayPath, cfg.bitrate, cfg.fps, cfg.duration)
	fmt.Fprintln(out, "| viewers | load (1m) | relay CPU % of a core | relay RSS MiB | RSS per viewer KiB | loss % | delay p50 ms | delay p99 ms | join→first packet p50/p99 ms | join→first video p50/p99 ms | dropped | retransmits |")
	fmt.Fprintln(out, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, n := range cfg.viewers {
		row, err := benchRowFor(ctx, cfg, n)
		if err != nil {
			return fmt.Errorf("%d viewers: %w", n, err)
		}
		perViewer := float64(row.rss-row.rssBase) / float64(n) / 1024
		fmt.Fprintf(out, "| %d | %s | %.1f | %.1f | %.0f | %.3f | %.1f | %.1f | %.0f / %.0f | %.0f / %.0f | %d | %d |\n",
			n, row.load, row.cpuPct, float64(row.rss)/(1<<20), perViewer, row.lossPct, row.p50, row.p99,
			row.firstP50, row.firstP99, row.joinP50, row.joinP99, row.dropped, row.retransmits)
	}
	return nil
}

func benchRowFor(ctx context.Context, cfg benchConfig, n int) (row benchRow, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration+3*time.Minute)
	defer cancel()

	relay := exec.Command(cfg.relayPath, "--listen-address", "127.0.0.1", "--include-loopback",
		"--max-peers", fmt.Sprint(n+10), "--log-level", "warn")
	relay.Stderr = os.Stderr
	relayIn, err := relay.StdinPipe()
	if err != nil {
		return row, fmt.Errorf("relay stdin: %w", err)
	}
	relayOut, err := relay.StdoutPipe()
	if err != nil {
		return row, fmt.Errorf("relay stdout: %w", err)
	}
	if err := relay.Start(); err != nil {
		return row, fmt.Errorf("start relay: %w", err)
	}
	defer func() {
		_ = relayIn.Close()
		if werr := relay.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("relay exit: %w", werr)
		}
	}()

	sw, err := swarm.New(cfg.swarm)
	if err != nil {
		return row, err
	}
	swarmInR, swarmInW := io.Pipe()
	swarmOutR, swarmOutW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		err := sw.Serve(ctx, swarmInR, swarmOutW)
		_ = swarmOutW.Close()
		served <- err
	}()
	defer func() {
		_ = swarmInW.Close()
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}()

	h := harness.New(relayIn, relayOut, swarmInW, swarmOutR)
	if _, err := h.WaitReady(ctx); err != nil {
		return row, err
	}
	pub, _, err := h.Publish(ctx, cfg.bitrate, cfg.fps)
	if err != nil {
		return row, err
	}
	if err := h.WaitState(ctx, harness.RelaySide, pub, "connected"); err != nil {
		return row, err
	}
	time.Sleep(2 * time.Second)
	var base relayStats
	if err := h.Relay.Call(ctx, "stats", nil, &base); err != nil {
		return row, err
	}
	row.rssBase = base.RSSBytes

	joined, err := addViewers(ctx, h, n)
	if err != nil {
		return row, err
	}
	time.Sleep(2 * time.Second) // key frames reached everyone; NACK traffic of the joins is over
	if err := h.Swarm.Call(ctx, "reset", nil, nil); err != nil {
		return row, err
	}
	var before, after relayStats
	if err := h.Relay.Call(ctx, "stats", nil, &before); err != nil {
		return row, err
	}
	start := time.Now()
	time.Sleep(cfg.duration)
	if err := h.Relay.Call(ctx, "stats", nil, &after); err != nil {
		return row, err
	}
	elapsed := time.Since(start)
	var st swarm.Stats
	if err := h.Swarm.Call(ctx, "stats", nil, &st); err != nil {
		return row, err
	}
	if after.Viewers != n || st.Connected != n {
		return row, fmt.Errorf("%d viewers connected at the relay, %d in the swarm, want %d", after.Viewers, st.Connected, n)
	}

	row.viewers = n
	row.load = loadAverage()
	row.cpuPct = (after.CPUSeconds - before.CPUSeconds) / elapsed.Seconds() * 100
	row.rss = after.RSSBytes
	row.lossPct = st.Aggregate.LossPct
	row.p50, row.p99 = st.Aggregate.DelayP50Ms, st.Aggregate.DelayP99Ms
	row.dropped = after.PacketsDropped - before.PacketsDropped
	row.retransmits = after.Retransmits - before.Retransmits
	var firstPacket, firstVideo []float64
	for _, v := range st.PerViewer {
		if at, ok := joined[v.ID]; ok && v.FirstVideoAt > 0 {
			firstPacket = append(firstPacket, float64(v.FirstPacketAt-at.UnixMilli()))
			firstVideo = append(firstVideo, float64(v.FirstVideoAt-at.UnixMilli()))
		}
	}
	if len(firstVideo) != n {
		return row, fmt.Errorf("%d of %d viewers received video", len(firstVideo), n)
	}
	row.firstP50, row.firstP99 = percentiles(firstPacket)
	row.joinP50, row.joinP99 = percentiles(firstVideo)
	return row, nil
}

func percentiles(v []float64) (p50, p99 float64) {
	sort.Float64s(v)
	return v[len(v)/2], v[(len(v)-1)*99/100]
}

// addViewers joins n viewers, a few at a time, and waits until all are connected; it returns
// when each one's subscribe was sent.
func addViewers(ctx context.Context, h *harness.Harness, n int) (map[string]time.Time, error) {
	const parallel = 8
	var (
		mu     sync.Mutex
		joined = make(map[string]time.Time, n)
		errs   []error
		wg     sync.WaitGroup
		slots  = make(chan struct{}, parallel)
	)
	for i := range n {
		id := fmt.Sprintf("v-%d", i)
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			at := time.Now()
			err := h.AddViewer(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			joined[id] = at
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for id := range joined {
		if err := h.WaitState(ctx, harness.SwarmSide, id, "connected"); err != nil {
			return nil, err
		}
	}
	return joined, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return "?"
	}
	return fields[0]
}
