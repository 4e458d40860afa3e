#!/usr/bin/env bash
# dis_chn_pruned against channel_pruned on MNIST at 50% of the MACs
# (`--target flops=0.5`), at the same fine-tuning budget: dis_chn_pruned
# fine-tunes STAGE_STEPS steps with its auxiliary heads before each of its
# stages' selections (2 × 50 with the defaults, 3 stages), so
# channel_pruned's host fine-tuning gets those steps on top of STEPS. Three
# fine-tuning seeds each; test accuracy on the full 10,000-image test set.
#
#   benches/dis-chn-pruned.sh MODEL.pf [STEPS]     (default 600 fine-tuning steps)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
model="$1"; steps="${2:-600}"; extra=100
bench_setup
run() { # learner steps seed
  f="$out/$1-$3.json"
  [ -s "$f" ] && return
  "$PF" plugin apply -p "$1" --model "$model" --data mnist:data/mnist --target flops=0.5 \
    --finetune-steps "$2" --lr 0.01 --seed "$3" --json > "$f.part"
  mv "$f.part" "$f"
}
for seed in 0 1 2; do
  run dis_chn_pruned "$steps" "$seed"
  run channel_pruned "$((steps + extra))" "$seed"
done
python3 - "$out" "$steps" "$extra" <<'PY'
import json, statistics, sys
out, steps, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("| learner | fine-tuning steps | float test accuracy | MACs ratio | fine-tuned test accuracy (seeds 0, 1, 2) | mean ± spread | lost (points) |")
print("|---|---|---|---|---|---|---|")
for name, budget in [("channel_pruned", f"{steps + extra}"), ("dis_chn_pruned", f"{extra} with heads + {steps}")]:
    runs = [json.load(open(f"{out}/{name}-{s}.json")) for s in range(3)]
    before = runs[0]["test_accuracy_before"] * 100
    accs = [r["test_accuracy_after"] * 100 for r in runs]
    mean = statistics.mean(accs)
    spread = (max(accs) - min(accs)) / 2
    print(f"| {name} | {budget} | {before:.2f}% | {runs[0]['measured']['macs_ratio']:.3f} | "
          f"{', '.join(f'{x:.2f}%' for x in accs)} | {mean:.2f} ± {spread:.2f}% | {before - mean:.2f} |")
PY
