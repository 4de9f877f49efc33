// Command streamroom-relay is the room's media relay (SFU). The room server starts it and drives
// it through standard input and output (JSON lines, see README.md); it exits when its standard
// input closes. Logs are JSON lines on standard error.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"streamroom.dev/media/relay"
)

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func main() {
	var (
		cfg      relay.Config
		announce stringList
		logLevel string
	)
	flag.IntVar(&cfg.UDPPort, "udp-port", 0, "the one UDP port all peers' ICE traffic shares (0: any free port)")
	flag.IntVar(&cfg.TCPPort, "tcp-port", 0, "ICE-TCP port (0: off)")
	flag.StringVar(&cfg.ListenAddress, "listen-address", "0.0.0.0", "address the UDP (and TCP) port is bound to")
	flag.Var(&announce, "announce-address", "address to put in host candidates instead of the interfaces' (repeatable; NAT 1:1)")
	flag.BoolVar(&cfg.IncludeLoopback, "include-loopback", false, "also gather candidates on loopback")
	flag.IntVar(&cfg.MaxPublishBitrate, "max-publish-bitrate", 4_000_000, "bits/s a publisher may send")
	flag.IntVar(&cfg.MaxPeers, "max-peers", 1000, "viewer peer connections at most")
	flag.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 15*time.Second, "close a peer that is not connected (ICE + DTLS) by then")
	flag.DurationVar(&cfg.KeyframeInterval, "keyframe-interval", time.Second, "key frame requests to the publisher at most once per interval")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "bad --log-level %q: %v\n", logLevel, err)
		os.Exit(2)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.AnnounceAddresses = announce

	r, err := relay.New(cfg)
	if err != nil {
		cfg.Logger.Error("relay not started", "err", err)
		os.Exit(1)
	}
	// The room server ends the relay by closing its input; a signal does the same.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-signals
		cfg.Logger.Info("relay stopping", "signal", s.String())
		r.Close()
		os.Exit(0)
	}()
	if err := r.Serve(context.Background(), os.Stdin, os.Stdout); err != nil {
		cfg.Logger.Error("relay stopped", "err", err)
		os.Exit(1)
	}
}
