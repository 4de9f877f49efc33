// Command streamroom-swarm runs synthetic publishers and headless viewers driven through
// standard input and output (JSON lines, see README.md "Swarm protocol"), or, with --bench,
// measures a streamroom-relay binary with 1 to N viewers on loopback and prints a table.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"streamroom.dev/media/swarm"
)

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func main() {
	var (
		ips      stringList
		logLevel string
		bench    benchConfig
		viewers  string
		runBench bool
	)
	flag.Var(&ips, "ip", "local address to gather candidates on (repeatable; default 127.0.0.1)")
	flag.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error (JSON lines on standard error)")
	flag.BoolVar(&runBench, "bench", false, "measure a relay binary instead of serving the control protocol")
	flag.StringVar(&bench.relayPath, "relay", "", "relay binary for --bench (default: streamroom-relay beside this binary)")
	flag.StringVar(&viewers, "viewers", "1,50,100,200,400", "--bench: viewer counts, one row each")
	flag.DurationVar(&bench.duration, "duration", 10*time.Second, "--bench: measuring time per row")
	flag.IntVar(&bench.bitrate, "bitrate", 1_000_000, "--bench: the synthetic broadcast's bits/s")
	flag.IntVar(&bench.fps, "fps", 30, "--bench: the synthetic broadcast's frames/s")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "bad --log-level %q: %v\n", logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := swarm.Config{IPs: ips, Logger: logger}

	if runBench {
		for _, f := range strings.Split(viewers, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bad --viewers entry %q\n", f)
				os.Exit(2)
			}
			bench.viewers = append(bench.viewers, n)
		}
		if bench.relayPath == "" {
			self, err := os.Executable()
			if err != nil {
				fmt.Fprintf(os.Stderr, "find own path: %v\n", err)
				os.Exit(1)
			}
			bench.relayPath = filepath.Join(filepath.Dir(self), "streamroom-relay")
		}
		bench.swarm = cfg
		if err := runBenchmark(context.Background(), bench, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}

	s, err := swarm.New(cfg)
	if err != nil {
		logger.Error("swarm not started", "err", err)
		os.Exit(1)
	}
	if err := s.Serve(context.Background(), os.Stdin, os.Stdout); err != nil {
		logger.Error("swarm stopped", "err", err)
		os.Exit(1)
	}
}
