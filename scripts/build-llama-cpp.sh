#!/usr/bin/env bash
# Builds llama.cpp, the peer losad's decode speed is compared with, from the llama.cpp sources that the
# source distribution of the PyPI package llama-cpp-python vendors (pinned below; PyPI and Debian are the
# only registries this project reaches). CPU only, native instructions, Release, no network code (no
# OpenSSL/CURL, no server, no GPU), static so the binaries stand alone. Only the tools the benchmarks run:
#   llama-bench       prefill/decode tokens/s (`-o json` gives one record per test)
#   llama-completion  one-shot generation from a prompt (this version's llama-cli needs the server build)
#   llama-perplexity  perplexity over a text file
# Into .cache/llama.cpp/: bin/ (the binaries) and VERSION (package version, llama.cpp commit, build number).
# Idempotent: does nothing when bin/ already holds this pin's build. Prints the bin folder on stdout;
# progress goes to stderr. LLAMA_CPP_JOBS (default 2) sets the build's parallel jobs.
# With --sources-only: only fetches and extracts the sources, and prints the llama.cpp source folder
# (scripts/bench-kit.sh packs them for a machine that builds them itself).
set -euo pipefail
sources_only=0
[ "${1:-}" = "--sources-only" ] && sources_only=1

root=$(cd "$(dirname "$0")/.." && pwd)
package_version="0.3.36"
tools=(llama-bench llama-completion llama-perplexity)
jobs="${LLAMA_CPP_JOBS:-2}"

cache="$root/.cache"
home="$cache/llama.cpp"
bin="$home/bin"
source_parent="$home/src"
source_root="$source_parent/llama_cpp_python-$package_version"
llama_source="$source_root/vendor/llama.cpp"
build="$home/build-$package_version"

already_built() {
    [ -f "$home/VERSION" ] && grep -qx "llama-cpp-python $package_version" "$home/VERSION" || return 1
    for tool in "${tools[@]}"; do [ -x "$bin/$tool" ] || return 1; done
}
if [ "$sources_only" = 0 ] && already_built; then
    (cd "$bin" && pwd -P)
    exit 0
fi

# MARK: - Build tools (Debian packages, only those missing; as scripts/install-deps.sh does)
needed=()
command -v cmake >/dev/null 2>&1 || needed+=(cmake)
command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || needed+=(g++)
command -v make >/dev/null 2>&1 || needed+=(make)
command -v git >/dev/null 2>&1 || needed+=(git)   # only for the commit in VERSION and llama.cpp's build info
[ "$sources_only" = 1 ] && needed=()
if [ ${#needed[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "build-llama-cpp: missing ${needed[*]}, and this system has no apt-get; install them with your package manager." >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "build-llama-cpp: need root to install ${needed[*]}." >&2; exit 1; }
        sudo="sudo"
    fi
    echo "build-llama-cpp: installing ${needed[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
fi

# MARK: - Sources: the sdist from PyPI (only this package as source; its build backend may come as wheels
# while pip reads the sdist's metadata), extracted whole so that the vendored llama.cpp's .git link
# (into the sdist's .git/modules) still resolves for the commit.
mkdir -p "$cache/downloads" "$source_parent"
sdist="$cache/downloads/llama_cpp_python-$package_version.tar.gz"
if [ ! -s "$sdist" ]; then
    echo "build-llama-cpp: downloading llama-cpp-python $package_version (source distribution, ~77 MB)" >&2
    python3 -m pip download --quiet --no-deps --disable-pip-version-check \
        --no-binary llama-cpp-python -d "$cache/downloads" "llama-cpp-python==$package_version" >&2
fi
[ -s "$sdist" ] || { echo "build-llama-cpp: pip did not leave $sdist" >&2; exit 1; }
if [ ! -f "$llama_source/CMakeLists.txt" ]; then
    rm -rf "$source_root"
    tar -xzf "$sdist" -C "$source_parent"
fi
[ -f "$llama_source/CMakeLists.txt" ] || { echo "build-llama-cpp: $sdist has no vendor/llama.cpp/CMakeLists.txt" >&2; exit 1; }
if [ "$sources_only" = 1 ]; then
    echo "$llama_source"
    exit 0
fi

# MARK: - Configure and build only the tools above
echo "build-llama-cpp: building ${tools[*]} with $jobs jobs in $build (takes a while on 2 cores)" >&2
started=$(date +%s)
cmake -S "$llama_source" -B "$build" -G "Unix Makefiles" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON -DGGML_CCACHE=OFF \
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF -DGGML_RPC=OFF \
    -DGGML_BACKEND_DL=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_UI=OFF >"$home/cmake-configure.log" 2>&1 \
    || { echo "build-llama-cpp: cmake configure failed; see $home/cmake-configure.log" >&2; tail -20 "$home/cmake-configure.log" >&2; exit 1; }
cmake --build "$build" --config Release -j "$jobs" --target "${tools[@]}" >"$home/cmake-build.log" 2>&1 \
    || { echo "build-llama-cpp: build failed; see $home/cmake-build.log" >&2; tail -30 "$home/cmake-build.log" >&2; exit 1; }
seconds=$(( $(date +%s) - started ))

mkdir -p "$bin"
for tool in "${tools[@]}"; do
    built="$build/bin/$tool"
    [ -x "$built" ] || { echo "build-llama-cpp: the build has no $built" >&2; exit 1; }
    install -m 0755 "$built" "$bin/$tool"
done
commit=$(git -C "$llama_source" rev-parse HEAD 2>/dev/null || echo unknown)
build_info=$("$bin/llama-bench" --version 2>&1 | head -1 || true)
cat >"$home/VERSION" <<EOF
llama-cpp-python $package_version
llama.cpp commit $commit
llama.cpp build info: $build_info
built $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${seconds}s with $jobs jobs: Release, GGML_NATIVE, static, CPU only
EOF
echo "build-llama-cpp: built in ${seconds}s; $(sed -n 2p "$home/VERSION")" >&2
(cd "$bin" && pwd -P)
