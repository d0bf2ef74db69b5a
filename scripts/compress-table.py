#!/usr/bin/env python3
"""One table of `losad compress` reports: python3 compress-table.py DIR RUN... reads DIR/RUN/report.json for
each RUN (skipping those not there) and prints the perplexity of every evaluation text (dense, pruned-only,
final), the training objective, the sparsity, the job's wall time and peak memory."""
import json, os, sys

def objective(settings):
    o = settings.get("objective")
    if o is None or settings.get("recovery") == "none":
        return "ce" if settings.get("recovery") != "none" else "-"
    terms = []
    if o["crossEntropyWeight"] > 0: terms.append("ce" if o["crossEntropyWeight"] == 1 else f"{o['crossEntropyWeight']:g}ce")
    if o["distillationWeight"] > 0:
        terms.append(("kd" if o["distillationWeight"] == 1 else f"{o['distillationWeight']:g}kd") + f"/T{o['temperature']:g}")
    if o["hiddenStateWeight"] > 0:
        terms.append("hid" if o["hiddenStateWeight"] == 1 else f"{o['hiddenStateWeight']:g}hid")
    return "+".join(terms)

def method(settings):
    m = settings.get("method", "?")
    return m + ("+ls" if settings.get("weightReconstruction") == "least-squares" and m != "sparsegpt" else "")

out, runs = sys.argv[1], sys.argv[2:]
print(f"{'run':22} {'method':10} {'objective':14} {'text':14} {'dense':>8} {'pruned':>8} {'final':>8} {'vs pruned':>9} "
      f"{'sparsity':>8} {'wall s':>7} {'peak GiB':>8}")
for name in runs:
    path = os.path.join(out, name, "report.json")
    if not os.path.exists(path): continue
    r = json.load(open(path))
    for e in r["evaluations"]:
        gain = (e["final"] / e["pruned"] - 1) * 100
        print(f"{name:22} {method(r['settings']):10} {objective(r['settings']):14} {e['text'][:14]:14} {e['dense']:8.3f} {e['pruned']:8.3f} "
              f"{e['final']:8.3f} {gain:+8.1f}% {r['finalSparsity']['fraction']:8.4f} {r['wallSeconds']:7.0f} "
              f"{r['peakMemoryBytes']/2**30:8.2f}")
