#!/usr/bin/env bash
# Issue 14's scaling figures: `losad compress` on models from 135M to 7B parameters with one reduced budget
# (LoSA, 2 iterations, 4 calibration and 8 training windows of 128 tokens, 1 evaluation window of 256, no
# least-squares refit: small enough that the 7B shape finishes in well under an hour on 2 cores; the refit's kept
# values would make a 7B student 13.6 GiB larger), then a table per model: parameters, peak RSS against the job's
# own memory estimate, how the plan kept the model, seconds per calibration token and per training token, total
# time (scripts/scale-table.py). Models: the demo model (SmolLM2-135M, Q4_1), Gemma 3
# 270M (Q4_K_M), and LLaMA shapes with random weights (scripts/make_random_llama.py, Q8_0): TinyLlama's ~1B and
# Llama-2's ~7B. LOSAD_SCALE_MODELS="demo 1b" runs only those; extra arguments go to every `losad compress`
# (e.g. --memory-limit 16G). A run whose report.json exists is kept (LOSAD_SCALE_OUT picks another folder).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="${LOSAD_SCALE_OUT:-$root/.cache/bench-scale}"
losad="$root/.build/release/losad"
random="$root/.cache/models/random"
mkdir -p "$out"

model_path() {
    case $1 in
        demo) bash "$root/scripts/fetch-demo-model.sh" ;;
        gemma3-270m) bash "$root/scripts/fetch-family-models.sh" | grep gemma-3-270m ;;
        1b | 7b)
            local shape; shape=$([ "$1" = 1b ] && echo tinyllama-1b || echo llama2-7b)
            if [ ! -s "$random/$shape-Q8_0.gguf" ]; then
                "$(bash "$root/scripts/python-env.sh")" "$root/scripts/make_random_llama.py" "$shape" --type Q8_0 >&2
            fi
            echo "$random/$shape-Q8_0.gguf" ;;
        *) echo "bench-scale: no model named $1 (demo, gemma3-270m, 1b, 7b)" >&2; return 2 ;;
    esac
}

budget=(--recovery losa --iterations 2 --calibration-windows 4 --calibration-length 128 --training-samples 8
        --training-length 128 --eval-windows 1 --eval-length 256 --eval default --weight-reconstruction none)
read -r -a models <<< "${LOSAD_SCALE_MODELS:-demo gemma3-270m 1b 7b}"
for name in "${models[@]}"; do
    if [ -s "$out/$name/report.json" ]; then echo "$name: done before, kept" >&2; continue; fi
    model=$(model_path "$name")
    rm -rf "$out/$name"
    echo "== $name: losad compress $model ${budget[*]} $* ==" >&2
    if ! /usr/bin/time -f "%e s wall, %U s user, %M KiB peak RSS" "$losad" compress "$model" --out "$out/$name" "${budget[@]}" "$@" \
        --json > "$out/$name.json" 2> "$out/$name.log"; then
        tail -3 "$out/$name.log" >&2
        continue
    fi
    tail -1 "$out/$name.log" >&2
done
python3 "$root/scripts/scale-table.py" "$out" "${models[@]}"
