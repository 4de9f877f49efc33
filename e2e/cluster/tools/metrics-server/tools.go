//go:build tools

// Package tools pins metrics-server built by e2e/src/build/tools.ts.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
