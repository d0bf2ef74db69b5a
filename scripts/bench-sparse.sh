#!/usr/bin/env bash
# Sparse decode benchmark (issue 12): losad's dense Q8_0/Q4_0 and sparse 8-/4-bit decode at 50% and
# 70% against llama.cpp's dense decode, on the demo model and on a TinyLlama-shaped 1B model with
# random weights (far beyond any cache), 2 threads, one table (scripts/bench_sparse.py).
# Extra arguments go to the driver (--repetitions N, --tokens N, --prompt N, --threads N).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=$(bash scripts/python-env.sh)
demo=$(bash scripts/fetch-demo-model.sh)
llama_bin=$(bash scripts/build-llama-cpp.sh)
swift build -c release --product losad >&2
losad="$(swift build -c release --show-bin-path)/losad"
folder="$root/.cache/bench-sparse"
mkdir -p "$folder"
for type in Q8_0 Q4_0; do
    [ -s "$folder/demo-$type.gguf" ] || "$python" scripts/requantize_gguf.py "$demo" "$folder/demo-$type.gguf" --type "$type" >&2
done
make --no-print-directory random-models >&2
random="$root/.cache/models/random"
"$python" scripts/bench_sparse.py --losad "$losad" --llama-bench "$llama_bin/llama-bench" --folder "$folder" \
    --model demo "$folder/demo-Q8_0.gguf" "$folder/demo-Q4_0.gguf" \
    --model tinyllama-1b "$random/tinyllama-1b-Q8_0.gguf" "$random/tinyllama-1b-Q4_0.gguf" \
    --json "$folder/bench-sparse.json" "$@"
