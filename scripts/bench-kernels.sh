#!/usr/bin/env bash
# Kernels benchmark: release build, numpy in a venv, one side-by-side table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-bench"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check numpy threadpoolctl
fi
bin=$(cd "$root" && swift build -c release --show-bin-path)
cd "$root/scripts"
# Both sides run with all cores; numpy's own OpenBLAS picks its kernel itself.
"$venv/bin/python" bench_kernels.py "$bin/KernelsBenchmark"
