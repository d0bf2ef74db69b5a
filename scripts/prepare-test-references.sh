#!/usr/bin/env bash
# Everything the suite compares against that is not committed: the reference
# Python packages (.venv-test), the demo model, and the demo model's tensors as
# the reference reader dequantises them (.cache/reference). Idempotent.
# Prints the environment assignments for `swift test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=$(bash "$root/scripts/python-env.sh")
model=$(bash "$root/scripts/fetch-demo-model.sh")
reference="$root/.cache/reference"
stem=$(basename "$model" .gguf)
if [ ! -s "$reference/$stem.json" ] || [ "$reference/$stem.json" -ot "$root/scripts/fixtures/gguf_dump_reference.py" ]; then
    "$python" "$root/scripts/fixtures/gguf_dump_reference.py" "$model" "$reference" >&2
fi
echo "LOSAD_TEST_PYTHON=$python"
echo "LOSAD_DEMO_MODEL=$model"
echo "LOSAD_REFERENCE_DIR=$reference"
