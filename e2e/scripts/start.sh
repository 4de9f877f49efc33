#!/usr/bin/env bash
# `npm start`: a cluster that runs real containers (this repository's Kubernetes with a real node, or
# kind on a machine with Docker and internet), the images built from this checkout, the operator
# installed by its Helm chart, and examples/basic-room.yaml; then the room's URL, for viewers and for
# the broadcaster (e2e/src/cluster/dev.ts). `npm stop` tears it all down.
# shellcheck source=errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/errors.sh" # set -Eeuo pipefail; says what failed
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit
# shellcheck source=preflight.sh
source e2e/scripts/preflight.sh

need_node
need_node_modules
exec node --import tsx e2e/src/cluster/cli.ts start
