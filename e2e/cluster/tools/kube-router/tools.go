//go:build tools

// Package tools pins kube-router, built by e2e/src/build/tools.ts; the real node runs only its network
// policy controller (--run-firewall), as a host process, to enforce NetworkPolicies on the CNI bridge.
//
// go.mod was made with `go get` rather than `go mod tidy`: tidy also resolves the imports of the tests
// of github.com/docker/docker (a module without go.mod), at their latest versions, which would raise
// about 25 of kube-router's dependencies (grpc 1.62 -> 1.84, otel 1.24 -> 1.47, ...). As it is, every
// dependency is at the version kube-router v2.1.0's own go.mod pins.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
