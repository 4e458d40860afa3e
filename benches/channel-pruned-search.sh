#!/usr/bin/env bash
# Searched per-layer preserve ratios against uniform ones at equal MACs:
# `pf compress` with channel_pruned under `--target flops=0.5`, once with
# `per_layer=true` and the random optimizer over TRIALS trials (each trial's
# ratios are preferences that the learner scales to the budget), once with
# one uniform ratio (the budget decides it; one trial). Both keep the
# search's fine-tuned candidate (no re-training), so the figures compare
# the ratios alone; test accuracy on the full 10,000-image MNIST test set.
#
#   benches/channel-pruned-search.sh MODEL.pf [TRIALS] [STEPS]   (default 30 trials, 300 steps)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
model="$1"; trials="${2:-30}"; steps="${3:-300}"
bench_setup
run() { # name per_layer trials
  [ -s "$out/$1.json" ] && return
  rm -f "$out/$1.db"
  "$PF" compress --model "$model" --data mnist:data/mnist --plugin channel_pruned \
    --optimizer random --set per_layer="$2" --target flops=0.5 --trials "$3" \
    --finetune-steps "$steps" --retrain-epochs 0 --seed 0 --study "$out/$1.db" \
    --export "$out/$1.pf" --report "$out/$1.html" --json > "$out/$1.json.part"
  mv "$out/$1.json.part" "$out/$1.json"
}
run uniform false 1
run per-layer true "$trials"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("| ratios | trials | best trial: validation accuracy | MACs ratio | test accuracy (baseline) |")
print("|---|---|---|---|---|")
for name in ["uniform", "per-layer"]:
    r = json.load(open(f"{out}/{name}.json"))
    f, b = r["final"], r["baseline"]
    print(f"| {name} | {r['trials']} | {r['best']['accuracy']*100:.2f}% | "
          f"{f['footprint']['macs'] / b['footprint']['macs']:.3f} | "
          f"{f['test_accuracy']*100:.2f}% ({f['baseline_test_accuracy']*100:.2f}%) |")
PY
