#!/usr/bin/env bash
# The compression figures of issue 5 on the demo model, quick profile: Wanda at 50% and 70% with LoSA and with
# the dense-LoRA baseline, and 2:4 with LoSA; each job's report.json, then one table. Evaluation text: the
# held-out Python documentation (default) and Perl's perldiag.pod (another domain than the training text).
# Arguments: extra `losad compress` options for every run (e.g. --seed 1). Takes about an hour on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(bash "$root/scripts/fetch-demo-model.sh")
out="${LOSAD_BENCH_OUT:-$root/.cache/bench-compress}"
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
run losa-50 --sparsity 0.5 --recovery losa "$@"
run lora-50 --sparsity 0.5 --recovery lora "$@"
run losa-70 --sparsity 0.7 --recovery losa "$@"
run lora-70 --sparsity 0.7 --recovery lora "$@"
run losa-2of4 --sparsity 0.5 --pattern 2:4 --recovery losa "$@"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
print(f"{'run':10} {'text':14} {'dense':>8} {'pruned':>8} {'final':>8} {'vs pruned':>9} {'sparsity':>8} {'wall s':>7} {'peak GiB':>8}")
for name in ["losa-50", "lora-50", "losa-70", "lora-70", "losa-2of4"]:
    path = os.path.join(out, name, "report.json")
    if not os.path.exists(path): continue
    r = json.load(open(path))
    for e in r["evaluations"]:
        gain = (e["final"] / e["pruned"] - 1) * 100
        print(f"{name:10} {e['text'][:14]:14} {e['dense']:8.3f} {e['pruned']:8.3f} {e['final']:8.3f} {gain:+8.1f}% "
              f"{r['finalSparsity']['fraction']:8.4f} {r['wallSeconds']:7.0f} {r['peakMemoryBytes']/2**30:8.2f}")
PY
