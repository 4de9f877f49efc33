//go:build tools

// Package tools pins metrics-server built by e2e/cluster/build.sh.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
