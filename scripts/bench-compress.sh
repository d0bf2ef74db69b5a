#!/usr/bin/env bash
# The compression figures of issues 5 and 15 on the demo model, quick profile: Wanda at 50% and 70% with LoSA and
# with the dense-LoRA baseline, each trained on next-token cross-entropy and on distillation from the dense model
# (objective $LOSAD_BENCH_OBJECTIVE, default ce+kd), and 2:4 with LoSA; each job's report.json, then one table
# (scripts/compress-table.py). Evaluation text: the held-out Python documentation (default) and Perl's
# perldiag.pod (another domain than the training text). Arguments: extra `losad compress` options for every run
# (e.g. --seed 1, or --training-samples 320 with LOSAD_BENCH_OUT set to another folder). About 15 minutes a run
# on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(bash "$root/scripts/fetch-demo-model.sh")
out="${LOSAD_BENCH_OUT:-$root/.cache/bench-compress}"
kd=(--objective "${LOSAD_BENCH_OBJECTIVE:-ce+kd}")
losad="$root/.build/release/losad"
other=$(ls /usr/share/perl/*/pod/perldiag.pod 2>/dev/null | head -1 || true)
evals=(--eval default)
[ -n "$other" ] && evals+=(--eval "$other")
mkdir -p "$out"
run() {
    local name=$1; shift
    if [ -s "$out/$name/report.json" ]; then echo "$name: done before, kept" >&2; return; fi
    rm -rf "$out/$name"
    echo "== $name: losad compress $* ==" >&2
    /usr/bin/time -f "%e s wall, %M KiB peak RSS" "$losad" compress "$model" --out "$out/$name" "${evals[@]}" "$@" \
        --json > "$out/$name.json" 2> "$out/$name.log" || { tail -5 "$out/$name.log" >&2; return 1; }
    tail -1 "$out/$name.log" >&2
}
runs=(losa-50 lora-50 losa-50-kd lora-50-kd losa-70 lora-70 losa-70-kd lora-70-kd losa-2of4)
run losa-50 --sparsity 0.5 --recovery losa "$@"
run lora-50 --sparsity 0.5 --recovery lora "$@"
run losa-50-kd --sparsity 0.5 --recovery losa "${kd[@]}" "$@"
run lora-50-kd --sparsity 0.5 --recovery lora "${kd[@]}" "$@"
run losa-70 --sparsity 0.7 --recovery losa "$@"
run lora-70 --sparsity 0.7 --recovery lora "$@"
run losa-70-kd --sparsity 0.7 --recovery losa "${kd[@]}" "$@"
run lora-70-kd --sparsity 0.7 --recovery lora "${kd[@]}" "$@"
run losa-2of4 --sparsity 0.5 --pattern 2:4 --recovery losa "$@"
python3 "$root/scripts/compress-table.py" "$out" "${runs[@]}"
