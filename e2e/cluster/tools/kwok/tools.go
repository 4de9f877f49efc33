//go:build tools

// Package tools pins kwok (fake nodes/pods) built by e2e/src/build/tools.ts.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
