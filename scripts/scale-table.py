#!/usr/bin/env python3
"""The table of scripts/bench-scale.sh from each run's report.json (or its log when the job was refused):
parameters, peak RSS (/usr/bin/time's, from outside the job), the job's memory estimate and their ratio, how training kept its activations and LoSA its dense
features (kept or recomputed, as the job's memory plan chose), seconds per
calibration token (the stages that push the calibration windows through the model: dense features, RMI, pruning,
the pruned-only baseline, over all their passes, divided by the calibration tokens), seconds per training token,
total wall time; then each model's per-token costs against the model before it, over the parameter ratio (the
issue's bar: from 1B to 7B, no more than 1.3). The student column: the model being compressed kept as a Float32
copy or compactly (the input read in place with a mask per projection)."""
import json
import os
import re
import sys

out, names = sys.argv[1], sys.argv[2:]
CALIBRATION_STAGES = ["dense-features", "rmi", "prune", "pruned-baseline"]
rows = []
for name in names:
    path = os.path.join(out, name, "report.json")
    if not os.path.exists(path):
        log = os.path.join(out, f"{name}.log")
        reason = open(log).read().strip().splitlines()[-1] if os.path.exists(log) else "not run"
        print(f"{name}: no report ({reason[:300]})")
        continue
    r = json.load(open(path))
    s, stages = r["settings"], r["stageSeconds"]
    params = r["input"].get("parameters") or r["input"]["projectionParameters"]
    calibration_tokens = s["calibrationWindows"] * s["calibrationLength"]
    training_tokens = sum(i["trainingWindows"] for i in r["iterations"]) * s["trainingLength"]
    memory = r.get("memory") or {}
    # Peak RSS as /usr/bin/time measured it from outside (the log's last line), else as the job read it (VmHWM).
    peak = r["peakMemoryBytes"]
    log = os.path.join(out, f"{name}.log")
    if os.path.exists(log):
        found = re.findall(r"(\d+) KiB peak RSS", open(log).read())
        if found:
            peak = max(peak, int(found[-1]) * 1024)
    rows.append(dict(
        name=name, params=params, peak=peak, estimate=memory.get("estimateBytes"),
        activations=memory.get("trainingActivations", "?"), dense=memory.get("denseFeatures", "?"),
        student=memory.get("studentWeights") or "float32",
        calib=sum(stages.get(k, 0) for k in CALIBRATION_STAGES) / calibration_tokens,
        train=stages.get("train", 0) / max(training_tokens, 1), wall=r["wallSeconds"]))

gib = 1 << 30
print(f"{'model':<12} {'parameters':>11} {'peak GiB':>9} {'estimate':>9} {'est/peak':>8} {'activations':>11} {'dense':>10} "
      f"{'student':>8} {'s/calib tok':>11} {'s/train tok':>11} {'wall s':>8}")
for x in rows:
    est = f"{x['estimate'] / gib:9.2f}" if x["estimate"] else f"{'-':>9}"
    ratio = f"{x['estimate'] / x['peak']:8.2f}" if x["estimate"] else f"{'-':>8}"
    print(f"{x['name']:<12} {x['params'] / 1e9:10.3f}B {x['peak'] / gib:9.2f} {est} {ratio} {x['activations']:>11} {x['dense']:>10} "
          f"{x['student']:>8} {x['calib']:11.5f} {x['train']:11.5f} {x['wall']:8.0f}")
if len(rows) > 1:
    print("\nper-token cost growth over parameter growth, each model against the one before:")
    for base, x in zip(rows, rows[1:]):
        p = x["params"] / base["params"]
        print(f"  {base['name']} -> {x['name']}: parameters x{p:.2f}; calibration x{x['calib'] / base['calib']:.2f} "
              f"({x['calib'] / base['calib'] / p:.2f} of it), training x{x['train'] / base['train']:.2f} "
              f"({x['train'] / base['train'] / p:.2f} of it)")
