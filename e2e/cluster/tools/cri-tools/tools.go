//go:build tools

// Package tools pins crictl (used by up.sh/down.sh --real-node to stop and remove pod sandboxes
// through the CRI, so CNI DEL runs) built by e2e/src/build/tools.ts.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
