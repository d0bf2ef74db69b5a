#!/usr/bin/env bash
# The demo: what losad can do today with the demo model. Grows with each
# capability (compress, evaluate, the daemon) as it lands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$root" && swift build -c release --show-bin-path)
model=$(bash "$root/scripts/fetch-demo-model.sh")
echo "== losad version"
"$bin/losad" version
echo
echo "== losad inspect --load $model"
"$bin/losad" inspect --load "$model"
