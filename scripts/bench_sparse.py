"""Decode and prefill speed of losad's sparse files against dense Q8_0/Q4_0, losad's own and
llama.cpp's, side by side in one run (issue 12's table). Driven by scripts/bench-sparse.sh.

For each base model (a dense Q8_0 GGUF and its Q4_0 twin): losad sparsify writes 8-bit and 4-bit
sparse files at 50% and 70% (magnitude pruning: decode speed does not depend on which weights are
kept), then `losad bench` measures all six files in one process and `llama-bench` the two dense
ones, both with the same threads, prompt and generation lengths.
"""
import argparse
import json
import pathlib
import subprocess
import sys


def run(command, **kwargs):
    print("+ " + " ".join(str(c) for c in command), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


# docs/sparse-format.md's losa.sparse.version: in the cached files' names, so that files of an older
# layout (which losad refuses) are written again rather than reused.
SPARSE_FORMAT_VERSION = 2


def sparse_files(losad, base_q8, folder, stem):
    files = {}
    for sparsity in (0.5, 0.7):
        for values in ("s8", "s4"):
            path = folder / f"{stem}-sparse{int(sparsity * 100)}-{values}-v{SPARSE_FORMAT_VERSION}.gguf"
            if not path.exists():
                run([losad, "sparsify", base_q8, "--out", path, "--values", values, "--magnitude", sparsity],
                    stdout=subprocess.DEVNULL)
            files[(values, sparsity)] = path
    return files


def llama_bench(binary, models, threads, prompt, tokens, repetitions):
    arguments = [binary, "-t", threads, "-p", prompt, "-n", tokens, "-r", repetitions, "-o", "json"]
    for model in models:
        arguments += ["-m", model]
    out = run(arguments, stdout=subprocess.PIPE).stdout
    results = {}
    for record in json.loads(out):
        key = (record["model_filename"], "pp" if record["n_prompt"] > 0 else "tg")
        results[key] = record["avg_ts"]
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losad", required=True)
    parser.add_argument("--llama-bench", help="llama.cpp's llama-bench (without it the table has no peer columns)")
    parser.add_argument("--folder", type=pathlib.Path, required=True)
    parser.add_argument("--model", action="append", nargs=3, metavar=("NAME", "Q8_0", "Q4_0"), required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--json", type=pathlib.Path, help="also write every figure here")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)

    report = {"threads": args.threads, "prompt": args.prompt, "tokens": args.tokens, "models": {}}
    lines = []
    for name, q8, q4 in args.model:
        q8, q4 = pathlib.Path(q8), pathlib.Path(q4)
        sparse = sparse_files(args.losad, q8, args.folder, name)
        ordered = [("dense Q8_0", q8), ("dense Q4_0", q4)] + [
            (f"sparse {v} {int(s * 100)}%", p) for (v, s), p in sorted(sparse.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
        peer = llama_bench(args.llama_bench, [q8, q4], args.threads, args.prompt, args.tokens, args.repetitions) \
            if args.llama_bench else None
        ours = json.loads(run([args.losad, "bench", *[p for _, p in ordered], "--threads", args.threads,
                               "--prompt-tokens", args.prompt, "--decode-tokens", args.tokens,
                               "--repetitions", args.repetitions, "--json"], stdout=subprocess.PIPE).stdout)
        peer_after = llama_bench(args.llama_bench, [q8, q4], args.threads, args.prompt, args.tokens, args.repetitions) \
            if args.llama_bench else None
        figures = {label: m for (label, _), m in zip(ordered, ours["models"])}
        nan = float("nan")
        llama = {kind: {phase: (peer[(str(path), phase)] + peer_after[(str(path), phase)]) / 2 if peer else nan
                        for phase in ("pp", "tg")}
                 for kind, path in (("Q8_0", q8), ("Q4_0", q4))}
        report["models"][name] = {"losad": ours, "llama.cpp": llama if peer else None,
                                  "llama.cpp runs": [{f"{k[0]}|{k[1]}": v for k, v in run_.items()} for run_ in (peer, peer_after)]
                                  if peer else []}
        peer_line = (f"llama.cpp pp{args.prompt}/tg{args.tokens} "
                     f"Q8_0 {llama['Q8_0']['pp']:.1f}/{llama['Q8_0']['tg']:.2f}, Q4_0 {llama['Q4_0']['pp']:.1f}/{llama['Q4_0']['tg']:.2f} tok/s "
                     f"(mean of a run before and after losad's)") if peer else "no llama.cpp here (no peer columns)"
        lines.append(f"{name}: memory read bandwidth {ours['readBandwidthBytesPerSecond'] / 1e9:.1f} GB/s, "
                     f"{ours['threads']} threads, {ours['kernelPath']} kernels; {peer_line}")
        lines.append(f"{'file':<16} {'MB':>8} {'MB/token':>9} {'decode tok/s':>13} {'vs llama.cpp':>13} "
                     f"{'of limit':>9} {'prefill tok/s':>14} {'vs own dense':>13}")
        dense_prefill = {"8": figures["dense Q8_0"]["prefillTokensPerSecond"], "4": figures["dense Q4_0"]["prefillTokensPerSecond"]}
        for label, m in figures.items():
            four = "Q4_0" in label or "s4" in label
            peer_tg = llama["Q4_0" if four else "Q8_0"]["tg"]
            own = dense_prefill["4" if four else "8"]
            lines.append(f"{label:<16} {m['fileBytes'] / 1e6:>8.1f} {m['weightBytesPerToken'] / 1e6:>9.1f} "
                         f"{m['decodeTokensPerSecond']:>13.2f} {m['decodeTokensPerSecond'] / peer_tg:>12.2f}x "
                         f"{m['fractionOfLimit'] * 100:>8.0f}% {m['prefillTokensPerSecond']:>14.1f} "
                         f"{m['prefillTokensPerSecond'] / own:>12.2f}x")
        lines.append("")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
