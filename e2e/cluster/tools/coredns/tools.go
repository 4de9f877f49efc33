//go:build tools

// Package tools pins CoreDNS (the real node's cluster DNS, run as a host process) built by
// e2e/cluster/build.sh.
package tools

import _ "github.com/coredns/coredns"
