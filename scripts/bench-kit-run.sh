#!/usr/bin/env bash
# Runs the kit of scripts/bench-kit.sh on a machine without Swift or network (Python 3 with numpy, and
# for the llama.cpp peer cmake and a C++ compiler): from the repository root,
#     bash scripts/bench-kit-run.sh [KIT] [OUT]
# KIT defaults to .cache/bench-kit, OUT (where every result goes) to ./bench-kit-results.
#   1. the machine (CPU model, the SIMD features losad's kernels choose between);
#   2. ckernels-check: every C kernel on every SIMD path this CPU has against the scalar reference,
#      then their throughput; a failure stops here (exit 1);
#   3. llama.cpp's llama-bench built natively for this CPU (in the background);
#   4. random models of the BENCH_SHAPE shape (default tinyllama-1b), Q8_0 and Q4_0
#      (scripts/make_random_llama.py), and losad's sparse files of them (s8/s4 at 50%/70%);
#   5. scripts/bench_sparse.py: the decode/prefill table, losad against llama.cpp, BENCH_THREADS threads
#      (default 2), and the same losad files again with the kernels capped at AVX2 (LOSAD_KERNEL_PATH;
#      BENCH_AVX2_AB=0 leaves that out).
# Each stage prints its wall time. BENCH_PROMPT / BENCH_TOKENS / BENCH_REPETITIONS shorten the table.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kit=$(cd "${1:-.cache/bench-kit}" && pwd)
out="${2:-$root/bench-kit-results}"
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
threads="${BENCH_THREADS:-2}"
prompt="${BENCH_PROMPT:-128}"
tokens="${BENCH_TOKENS:-64}"
repetitions="${BENCH_REPETITIONS:-2}"
work="${BENCH_KIT_WORK:-/tmp/bench-kit}"
shape="${BENCH_SHAPE:-tinyllama-1b}"
mkdir -p "$work/models" "$work/sparse"
started=$(date +%s)
stage() { echo; echo "== [$(( $(date +%s) - started ))s] $*"; }

# Unpacked with Python (xz may be missing there).
unpack() {
    python3 -c 'import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as archive:
    try:
        archive.extractall(sys.argv[2], filter="tar")
    except TypeError:  # Python before 3.11.4 has no filters
        archive.extractall(sys.argv[2])' "$1" "$2"
}
rm -rf "$work/runtime"
unpack "$kit/runtime.tar.xz" "$work"
losad="$work/runtime/bin/losad"

stage "machine (kit of commit $(cat "$kit/commit"))"
grep -m1 "model name" /proc/cpuinfo
echo "cpus: $(nproc)"
flags=$(grep -m1 "^flags" /proc/cpuinfo)
for feature in avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_vbmi2 avx512_bf16 amx_tile; do
    case " $flags " in *" $feature "*) echo "  $feature: yes";; *) echo "  $feature: no";; esac
done
grep -E "MemTotal|MemAvailable" /proc/meminfo
"$losad" version || { echo "bench-kit-run: losad does not start here"; exit 1; }

stage "ckernels-check"
"$kit/ckernels-check" --threads "$threads" --bench-mb "${BENCH_CHECK_MB:-128}" | tee "$out/ckernels-check.txt"
check=${PIPESTATUS[0]}
if [ "$check" != 0 ]; then
    echo "bench-kit-run: ckernels-check failed (exit $check): the table below would measure wrong kernels"
    exit 1
fi

stage "llama.cpp: native build of llama-bench (background, log in llama-build.log)"
llama_bench="${BENCH_LLAMA_BENCH:-}"   # an llama-bench already built for this CPU skips the build
llama_build=""
if [ -n "$llama_bench" ]; then
    echo "using $llama_bench"
elif command -v cmake >/dev/null && { command -v c++ >/dev/null || command -v g++ >/dev/null; }; then
    (
        rm -rf "$work/llama" && mkdir -p "$work/llama" && unpack "$kit/llama-src.tar.xz" "$work/llama" &&
        cmake -S "$work/llama/llama.cpp" -B "$work/llama/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
            -DGGML_NATIVE=ON -DGGML_CCACHE=OFF -DGGML_CUDA=OFF -DGGML_BACKEND_DL=OFF -DLLAMA_OPENSSL=OFF \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
            -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_UI=OFF &&
        cmake --build "$work/llama/build" --config Release -j "$(( $(nproc) > 4 ? $(nproc) - 4 : 1 ))" --target llama-bench
    ) >"$out/llama-build.log" 2>&1 &
    llama_build=$!
else
    echo "no cmake or C++ compiler here: the table will have no llama.cpp rows"
fi

stage "random models of the $shape shape (Q8_0, Q4_0)"
export PYTHONPATH="$kit/py${PYTHONPATH:+:$PYTHONPATH}"
pids=()
for type in Q8_0 Q4_0; do
    model="$work/models/$shape-$type.gguf"
    [ -s "$model" ] || python3 scripts/make_random_llama.py $shape --type "$type" --out "$model" \
        --vocab-from "$kit/vocab.gguf" >"$out/make-$type.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
for type in Q8_0 Q4_0; do
    [ -s "$work/models/$shape-$type.gguf" ] || { echo "bench-kit-run: no $type model"; cat "$out/make-$type.log"; exit 1; }
done
ls -la "$work/models"

stage "sparse files (losad sparsify, in parallel)"
pids=()
version=$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import bench_sparse; print(bench_sparse.SPARSE_FORMAT_VERSION)')
for sparsity in 50 70; do
    for values in s8 s4; do
        file="$work/sparse/$shape-sparse$sparsity-$values-v$version.gguf"
        [ -s "$file" ] || "$losad" sparsify "$work/models/$shape-Q8_0.gguf" --out "$file" \
            --values "$values" --magnitude "0.$sparsity" >"$out/sparsify-$sparsity-$values.log" 2>&1 &
        pids+=($!)
    done
done
wait "${pids[@]}"
ls -la "$work/sparse"

if [ -n "$llama_build" ]; then
    stage "waiting for the llama.cpp build"
    if wait "$llama_build" && [ -x "$work/llama/build/bin/llama-bench" ]; then
        llama_bench="$work/llama/build/bin/llama-bench"
        "$llama_bench" --version 2>&1 | head -2
        grep -m3 -E "GGML_AVX512|Adding CPU backend variant|march" "$out/llama-build.log" || true
    else
        echo "the llama.cpp build failed; its log's end:"; tail -15 "$out/llama-build.log"
    fi
fi

stage "bench_sparse.py: $threads threads, prompt $prompt, $tokens tokens, $repetitions repetitions"
peer=()
[ -n "$llama_bench" ] && peer=("--llama-bench" "$llama_bench")
python3 scripts/bench_sparse.py --losad "$losad" ${peer[@]+"${peer[@]}"} --folder "$work/sparse" \
    --model $shape "$work/models/$shape-Q8_0.gguf" "$work/models/$shape-Q4_0.gguf" \
    --threads "$threads" --prompt "$prompt" --tokens "$tokens" --repetitions "$repetitions" \
    --json "$out/bench-sparse.json" | tee "$out/bench-sparse.txt"

if [ "${BENCH_AVX2_AB:-1}" = 0 ]; then
    stage "done (BENCH_AVX2_AB=0: no AVX2-capped run)"
    exit 0
fi
stage "the same losad files with the kernels capped at AVX2 (LOSAD_KERNEL_PATH=avx2)"
LOSAD_KERNEL_PATH=avx2 "$losad" bench "$work/models/$shape-Q8_0.gguf" "$work/models/$shape-Q4_0.gguf" \
    "$work"/sparse/$shape-sparse*-v"$version".gguf --threads "$threads" \
    --prompt-tokens "$prompt" --decode-tokens "$tokens" --repetitions "$repetitions" | tee "$out/bench-avx2.txt"

stage "done"
