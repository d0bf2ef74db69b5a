#!/usr/bin/env bash
# `make bench-kit`: packs what the sparse decode benchmark needs into .cache/bench-kit/, for a machine
# that has neither Swift nor network (an AVX-512 server lent for a few minutes, say), where
# scripts/bench-kit-run.sh then runs it. The kit must stay small (a lent machine may take 64 MiB):
#   runtime.tar.xz   runtime/bin/losad: a wrapper that starts losad.real with the kit's own dynamic loader
#                    and libraries (runtime/lib: the loader, glibc and every library losad loads, OpenBLAS
#                    included), so the host's glibc version does not matter; losad.real is the release
#                    build with the Swift runtime linked statically, stripped (72 MB, 18 MB compressed)
#   ckernels-check   the C kernels' check and throughput program (static)
#   llama-src.tar.xz llama.cpp's sources (the pinned ones of scripts/build-llama-cpp.sh, trimmed to what
#                    llama-bench needs), built there natively: a binary built here for "native" would
#                    use this machine's instructions, not that one's
#   py/gguf          the gguf package that scripts/make_random_llama.py writes GGUF files with
#   vocab.gguf       the demo model's metadata (its first megabytes): the random models' tokenizer
# The random models themselves are written there (a 1B model does not travel).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kit="$root/.cache/bench-kit"
scratch="${BENCH_KIT_SCRATCH:-$root/.build/bench-kit}"   # a separate build: other flags
python=$(bash scripts/python-env.sh)
demo=$(bash scripts/fetch-demo-model.sh)
bash scripts/build-llama-cpp.sh --sources-only >/dev/null

rm -rf "$kit"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
runtime="$staging/runtime"
mkdir -p "$kit/py" "$runtime/bin" "$runtime/lib"

echo "bench-kit: release build of losad with the Swift runtime linked statically (in $scratch)" >&2
swift build -c release --product losad --static-swift-stdlib --scratch-path "$scratch" >&2
strip -o "$runtime/bin/losad.real" "$scratch/release/losad"

# Every shared library losad loads, and OpenBLAS (dlopen'ed, so not in ldd's list) with its own.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libopenblas.so.0)
for library in $( (ldd "$runtime/bin/losad.real"; ldd "$blas") | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u); do
    cp -L "$library" "$runtime/lib/"
done
cp -L "$blas" "$runtime/lib/libopenblas.so.0"
loader=$(ldd "$runtime/bin/losad.real" | awk '/ld-linux/{print $1}' | head -1)
cp -L "$loader" "$runtime/lib/ld-linux-x86-64.so.2"
strip --strip-unneeded "$runtime"/lib/*.so* 2>/dev/null || true
cat >"$runtime/bin/losad" <<'EOF'
#!/usr/bin/env bash
kit=$(cd "$(dirname "$0")/.." && pwd)
exec "$kit/lib/ld-linux-x86-64.so.2" --library-path "$kit/lib" "$kit/bin/losad.real" "$@"
EOF
chmod +x "$runtime/bin/losad"
"$runtime/bin/losad" version >/dev/null   # the bundled loader and libraries start it here too
tar -cf - -C "$staging" runtime | xz -T0 -6 >"$kit/runtime.tar.xz"

make --no-print-directory ckernels-check >&2
cp .build/ckernels-check "$kit/ckernels-check"

# llama.cpp: the library, the common code and the tools' folders (tools/CMakeLists.txt names them all),
# without the web UI and the server, which the build leaves out anyway.
llama_source=$(bash scripts/build-llama-cpp.sh --sources-only)
mkdir -p "$staging/llama.cpp"
(cd "$llama_source" && tar -cf - --exclude=tools/ui --exclude=tools/server CMakeLists.txt cmake include src \
    common vendor tools licenses LICENSE ggml/CMakeLists.txt ggml/cmake ggml/include ggml/src/CMakeLists.txt \
    ggml/src/*.c ggml/src/*.cpp ggml/src/*.h ggml/src/*.in ggml/src/ggml-cpu) | tar -xf - -C "$staging/llama.cpp"
tar -cJf "$kit/llama-src.tar.xz" -C "$staging" llama.cpp
git -C "$llama_source" rev-parse HEAD >"$kit/llama-commit" 2>/dev/null || echo unknown >"$kit/llama-commit"

site=$("$python" -c 'import gguf, pathlib; print(pathlib.Path(gguf.__file__).parent)')
cp -r "$site" "$kit/py/gguf"
find "$kit/py" -name __pycache__ -prune -exec rm -rf {} +
# The metadata section of the demo model (tokenizer included) ends well within its first 3 MB.
head -c 3000000 "$demo" >"$kit/vocab.gguf"

git rev-parse HEAD >"$kit/commit"
du -sh "$kit" >&2
echo "$kit"
