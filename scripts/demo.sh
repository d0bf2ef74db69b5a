#!/usr/bin/env bash
# The demo: what losad can do today with the demo model. Grows with each
# capability (compression, the daemon) as it lands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$root" && swift build -c release --show-bin-path)
model=$(bash "$root/scripts/fetch-demo-model.sh")
echo "== losad version"
"$bin/losad" version
echo
echo "== losad inspect --load $model"
"$bin/losad" inspect --load "$model"
echo
echo "== losad generate (greedy)"
"$bin/losad" generate "$model" --prompt "The capital of France is" --max-tokens 16
echo
echo "== losad eval: perplexity of a 20 KB English text at context 512"
"$bin/losad" eval "$model" --text "$root/Tests/TransformerTests/Fixtures/eval-text.txt" --ctx 512
