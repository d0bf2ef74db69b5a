#!/usr/bin/env bash
# The demo: what losad can do today with the demo model. Grows with each
# capability (inspect, compress, daemon) as it lands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$root" && swift build -c release --show-bin-path)
model=$(bash "$root/scripts/fetch-demo-model.sh")
echo "== losad version"
"$bin/losad" version
echo
echo "== demo model: $model ($(du -h "$model" | cut -f1))"
