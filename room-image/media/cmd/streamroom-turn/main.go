// Command streamroom-turn is the cluster's TURN gateway: browsers reach the rooms' media relays
// on their pod IPs through it (see README.md "TURN gateway"). Logs are JSON lines on standard
// error; SIGTERM or SIGINT stops it cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"streamroom.dev/media/turngw"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		cfg                                    turngw.Config
		relayAddress, secretFile, allowedPeers string
		allowedPorts, healthAddress, logLevel  string
	)
	flag.StringVar(&cfg.ListenAddress, "listen-address", turngw.DefaultListenAddress, "address the TURN port (UDP and TCP) is bound to")
	flag.IntVar(&cfg.Port, "port", turngw.DefaultPort, "the TURN port, UDP and TCP")
	flag.StringVar(&relayAddress, "relay-address", "", "IPv4 address relayed allocations are made on (default: the first non-loopback IPv4 address)")
	flag.StringVar(&cfg.Realm, "realm", turngw.DefaultRealm, "TURN realm")
	flag.StringVar(&secretFile, "secret-file", "", "file holding the master secret room keys are derived from (required; at least 32 bytes)")
	flag.StringVar(&allowedPeers, "allowed-peers", turngw.DefaultAllowedPeers, "comma-separated CIDRs relayed traffic may go to (the cluster's pod CIDR)")
	flag.StringVar(&allowedPorts, "allowed-peer-ports", turngw.DefaultAllowedPeerPorts, "comma-separated peer ports and ranges relayed traffic may go to (the relays' UDP port)")
	flag.IntVar(&cfg.MaxAllocations, "max-allocations", turngw.DefaultMaxAllocations, "allocations open at once, in total (also the TCP connections' limit)")
	flag.IntVar(&cfg.MaxAllocationsPerUser, "max-allocations-per-user", turngw.DefaultMaxAllocationsPerUser, "allocations open at once per room and user ID")
	flag.DurationVar(&cfg.MaxCredentialTTL, "max-credential-ttl", turngw.DefaultMaxCredentialTTL, "refuse usernames that expire further ahead than this")
	flag.StringVar(&healthAddress, "health-address", "0.0.0.0:8080", "address of GET /healthz and /metrics (empty: off)")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %s\n", strings.Join(flag.Args(), " "))
		return 2
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "bad --log-level %q: %v\n", logLevel, err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = logger
	fail := func(msg string, err error) int {
		logger.Error(msg, "err", err)
		return 1
	}

	if secretFile == "" {
		return fail("TURN gateway not started", errors.New("--secret-file is required"))
	}
	var err error
	if cfg.Secret, err = turngw.ReadSecretFile(secretFile); err != nil {
		return fail("TURN gateway not started", err)
	}
	if relayAddress == "" {
		if cfg.RelayAddress, err = turngw.DefaultRelayAddress(); err != nil {
			return fail("TURN gateway not started", fmt.Errorf("--relay-address: %w", err))
		}
	} else if cfg.RelayAddress = net.ParseIP(relayAddress); cfg.RelayAddress == nil {
		return fail("TURN gateway not started", fmt.Errorf("--relay-address %q is not an IP address", relayAddress))
	}
	if cfg.AllowedPeers, err = turngw.ParsePrefixes(allowedPeers); err != nil {
		return fail("TURN gateway not started", fmt.Errorf("--allowed-peers: %w", err))
	}
	if cfg.AllowedPeerPorts, err = turngw.ParsePortRanges(allowedPorts); err != nil {
		return fail("TURN gateway not started", fmt.Errorf("--allowed-peer-ports: %w", err))
	}
	if cfg.MaxAllocations < 1 || cfg.MaxAllocationsPerUser < 1 {
		return fail("TURN gateway not started", errors.New("--max-allocations and --max-allocations-per-user must be at least 1"))
	}

	// From here on a signal stops the gateway cleanly.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	srv, err := turngw.New(cfg)
	if err != nil {
		return fail("TURN gateway not started", err)
	}
	logger.Info("TURN gateway listening",
		"udp", srv.UDPAddr().String(), "tcp", srv.TCPAddr().String(), "relayAddress", cfg.RelayAddress.String(),
		"realm", cfg.Realm, "allowedPeers", allowedPeers, "allowedPeerPorts", allowedPorts,
		"maxAllocations", cfg.MaxAllocations, "maxAllocationsPerUser", cfg.MaxAllocationsPerUser)

	var health *http.Server
	healthDone := make(chan error, 1)
	if healthAddress != "" {
		ln, err := net.Listen("tcp", healthAddress)
		if err != nil {
			_ = srv.Close()
			return fail("TURN gateway stopped", fmt.Errorf("--health-address: %w", err))
		}
		health = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { healthDone <- health.Serve(ln) }()
		logger.Info("health and metrics listening", "address", ln.Addr().String())
	}

	code := 0
	select {
	case sig := <-signals:
		logger.Info("TURN gateway stopping", "signal", sig.String())
	case err := <-healthDone:
		logger.Error("health server stopped", "err", err)
		code = 1
	}

	if err := srv.Close(); err != nil {
		logger.Warn("TURN gateway closed with errors", "err", err)
	}
	if health != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := health.Shutdown(ctx); err != nil {
			logger.Warn("health server shutdown", "err", err)
		}
	}
	logger.Info("TURN gateway stopped")
	return code
}
