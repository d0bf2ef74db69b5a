#!/usr/bin/env bash
# Everything the suite compares against that is not committed: the reference
# Python packages (.venv-test), the demo model, the demo model's tensors as
# the reference reader dequantises them (.cache/reference), and the tiny family
# fixtures' GGUF twins (.cache/reference/families). Idempotent.
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
# The tiny family fixtures' GGUF twins, as llama.cpp's converter wrote them (not committed).
twins="$reference/families"
record="$root/Tests/TransformerTests/Fixtures/tiny-families.gguf.json"
if [ ! -s "$twins/tiny-gemma3.gguf" ] || [ "$twins/tiny-gemma3.gguf" -ot "$record" ] \
    || [ "$twins/tiny-gemma3.gguf" -ot "$root/scripts/fixtures/family_gguf_twins.py" ]; then
    "$python" "$root/scripts/fixtures/family_gguf_twins.py" "$twins" >&2
fi
echo "LOSAD_TEST_PYTHON=$python"
echo "LOSAD_DEMO_MODEL=$model"
echo "LOSAD_REFERENCE_DIR=$reference"
