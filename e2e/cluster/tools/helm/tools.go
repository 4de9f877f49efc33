//go:build tools

// Package tools pins helm (chart lint/template/install tests) built by e2e/src/build/tools.ts.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
