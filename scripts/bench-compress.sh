#!/usr/bin/env bash
# The compression figures of issues 5 and 15 on the demo model: Wanda pruning with three recoveries side by side —
# the plain dense-LoRA baseline (prune once, LoRA on cross-entropy, merge, re-mask), the same baseline trained on
# distillation from the dense model (objective $LOSAD_BENCH_OBJECTIVE, default ce+kd), and losad's default recipe
# (LoSA with the profile's objective, schedule and weight reconstruction: no options) — at 50% and 70% with the
# quick budget and at 50% with twice its training (320 windows, ~82k tokens), plus LoSA at 2:4, and the baseline
# given the default's objective and least-squares refit (q50-lora-ls: what LoSA's loop adds beyond them). Each
# job's report.json, then one table (scripts/compress-table.py). Evaluation text: the held-out Python
# documentation and Perl's perldiag.pod (another domain than the training text). Arguments: extra `losad compress`
# options for every run (e.g. --seed 1, with LOSAD_BENCH_OUT set to another folder). LOSAD_BENCH_RUNS="q50-lora
# t320-losa" runs only those; LOSAD_BENCH_RUNS=schedule runs the schedule sweep at 50% with the quick budget (the
# default against 5 iterations, adapter dropout 0.1, SparseGPT as the score, learning rates 5e-4 and 2e-3, warm-up 0.1,
# the last iteration's share 0.4: README's schedule table). 20–40 minutes a run on 2 cores; a run whose report.json exists
# is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(bash "$root/scripts/fetch-demo-model.sh")
out="${LOSAD_BENCH_OUT:-$root/.cache/bench-compress}"
kd="${LOSAD_BENCH_OBJECTIVE:-ce+kd}"
losad="$root/.build/release/losad"
other=$(ls /usr/share/perl/*/pod/perldiag.pod 2>/dev/null | head -1 || true)
evals=(--eval default)
[ -n "$other" ] && evals+=(--eval "$other")
mkdir -p "$out"
plain=(--recovery lora --objective ce --weight-reconstruction none)
declare -A options=(
    [q50-lora]="--sparsity 0.5 ${plain[*]}"
    [q50-lora-kd]="--sparsity 0.5 --recovery lora --objective $kd --weight-reconstruction none"
    [q50-losa]="--sparsity 0.5"
    [q70-lora]="--sparsity 0.7 ${plain[*]}"
    [q70-lora-kd]="--sparsity 0.7 --recovery lora --objective $kd --weight-reconstruction none"
    [q70-losa]="--sparsity 0.7"
    [t320-lora]="--sparsity 0.5 --training-samples 320 ${plain[*]}"
    [t320-lora-kd]="--sparsity 0.5 --training-samples 320 --recovery lora --objective $kd --weight-reconstruction none"
    [t320-losa]="--sparsity 0.5 --training-samples 320"
    [losa-2of4]="--sparsity 0.5 --pattern 2:4"
    [q50-lora-ls]="--sparsity 0.5 --recovery lora --weight-reconstruction least-squares"
    [q50-losa-t5]="--sparsity 0.5 --iterations 5"
    [q50-losa-dropout0.1]="--sparsity 0.5 --lora-dropout 0.1"
    [q50-losa-sparsegpt]="--sparsity 0.5 --method sparsegpt"
    [q50-losa-lr5e-4]="--sparsity 0.5 --learning-rate 5e-4"
    [q50-losa-lr2e-3]="--sparsity 0.5 --learning-rate 2e-3"
    [q50-losa-warmup0.1]="--sparsity 0.5 --warmup-fraction 0.1"
    [q50-losa-last0.4]="--sparsity 0.5 --last-iteration-share 0.4"
)
runs=(t320-lora t320-lora-kd t320-losa q50-lora q50-lora-kd q50-lora-ls q50-losa q70-lora q70-lora-kd q70-losa losa-2of4)
schedule=(q50-lora q50-losa q50-losa-t5 q50-losa-dropout0.1 q50-losa-sparsegpt q50-losa-lr5e-4 q50-losa-lr2e-3 q50-losa-warmup0.1 q50-losa-last0.4)
requested="${LOSAD_BENCH_RUNS:-${runs[*]}}"
[ "$requested" = schedule ] && { requested="${schedule[*]}"; runs=("${schedule[@]}"); }
read -r -a chosen <<< "$requested"
for name in "${chosen[@]}"; do
    [ -n "${options[$name]:-}" ] || { echo "bench-compress: no run named $name (runs: ${runs[*]})" >&2; exit 2; }
    if [ -s "$out/$name/report.json" ]; then echo "$name: done before, kept" >&2; continue; fi
    rm -rf "$out/$name"
    read -r -a args <<< "${options[$name]}"
    echo "== $name: losad compress ${args[*]} $* ==" >&2
    /usr/bin/time -f "%e s wall, %M KiB peak RSS" "$losad" compress "$model" --out "$out/$name" "${evals[@]}" \
        "${args[@]}" "$@" --json > "$out/$name.json" 2> "$out/$name.log" || { tail -5 "$out/$name.log" >&2; exit 1; }
    tail -1 "$out/$name.log" >&2
done
python3 "$root/scripts/compress-table.py" "$out" "${runs[@]}"
