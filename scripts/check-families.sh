#!/usr/bin/env bash
# Real models of the families beyond the demo model's: losad's perplexity (release `losad eval`, the
# model read in place, ctx 512, windows as the model's tokenizer starts them) against the reference
# transformers computed (Tests/TransformerTests/Fixtures/families-perplexity.json, made by
# scripts/fixtures/family_perplexity_reference.py). Fails when any differs by more than 0.5%.
# Where transformers' tokenizer and llama.cpp's split the text differently (Gemma 3: one run of 33
# spaces), the figure on llama.cpp's tokens is printed too; losad's tokenizer splits as llama.cpp's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/fetch-family-models.sh >/dev/null
swift build -c release --product losad >&2
bin=$(swift build -c release --show-bin-path)
python3 - "$bin/losad" <<'PY'
import json, pathlib, subprocess, sys
losad = sys.argv[1]
root = pathlib.Path.cwd()
reference = json.loads((root / "Tests/TransformerTests/Fixtures/families-perplexity.json").read_text())
text = root / "Tests/TransformerTests/Fixtures/eval-text.txt"
models = reference["models"] if isinstance(reference, dict) and "models" in reference else reference
failed = False
print(f"{'model':34} {'family':8} {'windows':>7} {'losad':>10} {'reference':>10} {'difference':>10} {'on llama.cpp tokens':>20}")
for entry in (models.values() if isinstance(models, dict) else models):
    path = root / ".cache/models/families" / entry["model"]
    run = subprocess.run([losad, "eval", str(path), "--text", str(text), "--ctx", str(entry["ctx"]), "--batch", "2", "--json"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{entry['model']}: losad eval failed: {run.stderr.strip()}"); failed = True; continue
    ours = json.loads(run.stdout)
    difference = ours["perplexity"] / entry["perplexity"] - 1
    same_windows = ours["windows"] == entry["windows"] and ours["predictedTokens"] == entry["predicted_tokens"]
    other = entry.get("on_llama_cpp_tokens", {}).get("perplexity")
    other_text = f"{other:.4f} ({ours['perplexity'] / other - 1:+.3%})" if other else "-"
    print(f"{entry['model']:34} {entry['family']:8} {ours['windows']:>7} {ours['perplexity']:>10.4f} {entry['perplexity']:>10.4f} {difference:>+10.3%} {other_text:>20}"
          + ("" if same_windows else f"  (windows differ: {ours['windows']}/{ours['predictedTokens']} vs {entry['windows']}/{entry['predicted_tokens']})"))
    failed |= abs(difference) > 0.005 or not same_windows
sys.exit(1 if failed else 0)
PY
