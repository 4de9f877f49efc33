//go:build tools

// Package tools pins helm (chart lint/template/install tests) built by e2e/cluster/build.sh.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
