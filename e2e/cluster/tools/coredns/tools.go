//go:build tools

// Package tools pins CoreDNS (the real node's cluster DNS, run as a host process) built by
// e2e/src/build/tools.ts.
package tools

import _ "github.com/coredns/coredns"
