//go:build tools

// Package tools pins kwok (fake nodes/pods) built by e2e/cluster/build.sh.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
