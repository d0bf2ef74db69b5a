#!/usr/bin/env bash
# Engine benchmark: release EngineBenchmark against PyTorch (transformers, float32, 2 threads) on the
# demo model, one side-by-side table (scripts/bench_engine.py). Extra arguments go to the driver
# (--steps N, --warmup N, --model PATH).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model="$root/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || bash "$root/scripts/fetch-demo-model.sh" >/dev/null
# A PyTorch + transformers venv: /tmp/venv-torch where one is already set up, else .venv-torch
# from the pinned requirements (the CPU computes with PyPI's torch wheel; it is large).
if [ -x /tmp/venv-torch/bin/python ]; then
    python=/tmp/venv-torch/bin/python
else
    venv="$root/.venv-torch"
    requirements="$root/scripts/requirements-transformers.txt"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    if ! cmp -s "$requirements" "$venv/.requirements" 2>/dev/null; then
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
        cp "$requirements" "$venv/.requirements"
    fi
    python="$venv/bin/python"
fi
(cd "$root" && swift build -c release --product EngineBenchmark >&2)
bin=$(cd "$root" && swift build -c release --show-bin-path)
cd "$root"
HF_HUB_OFFLINE=1 "$python" scripts/bench_engine.py "$bin/EngineBenchmark" --model "$model" "$@"
