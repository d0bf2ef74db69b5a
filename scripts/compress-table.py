#!/usr/bin/env python3
"""One table of `losad compress` reports: python3 compress-table.py DIR RUN... reads DIR/RUN/report.json for
each RUN (skipping those not there) and prints the perplexity of every evaluation text (dense, pruned-only,
final), the final one against the plain baseline of the same budget (the run named GROUP-lora for a run named
GROUP-…, e.g. q50-lora for q50-losa), the method, objective and schedule (LoSA iterations, peak learning rate,
warm-up share, adapter dropout, the last iteration's share of the training windows), the sparsity, the job's wall time and peak
memory."""
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

def schedule(settings):
    if settings.get("recovery") == "none": return "-"
    rate = f"lr{settings['learningRate']:g} w{settings['warmupFraction']:g} d{settings.get('loraDropout', 0.1):g}"
    if settings.get("recovery") != "losa": return rate
    return f"T{settings['iterations']} {rate} l{settings['lastIterationShare']:g}"

def load(out, name):
    path = os.path.join(out, name, "report.json")
    return json.load(open(path)) if os.path.exists(path) else None

out, runs = sys.argv[1], sys.argv[2:]
print(f"{'run':20} {'method':10} {'objective':11} {'schedule':26} {'text':12} {'dense':>7} {'pruned':>8} {'final':>8} "
      f"{'vs lora':>8} {'sparsity':>8} {'wall s':>7} {'peak GiB':>8}")
for name in runs:
    r = load(out, name)
    if r is None: continue
    baseline_name = name.split("-")[0] + "-lora"
    baseline = load(out, baseline_name) if baseline_name != name else None
    plain = {e["text"]: e["final"] for e in baseline["evaluations"]} if baseline else {}
    for e in r["evaluations"]:
        versus = f"{(e['final'] / plain[e['text']] - 1) * 100:+7.1f}%" if e["text"] in plain else f"{'-':>8}"
        print(f"{name:20} {method(r['settings']):10} {objective(r['settings']):11} {schedule(r['settings']):26} "
              f"{e['text'][:12]:12} {e['dense']:7.3f} {e['pruned']:8.3f} {e['final']:8.3f} {versus} "
              f"{r['finalSparsity']['fraction']:8.4f} {r['wallSeconds']:7.0f} {r['peakMemoryBytes']/2**30:8.2f}")
