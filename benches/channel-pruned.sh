#!/usr/bin/env bash
# channel_pruned on MNIST: a trained model pruned to 50% of its MACs
# (`--target flops=0.5`) with LASSO channel selection and with random
# selection (both followed by least-squares reconstruction), then fine-tuned
# for the same budget, for three fine-tuning seeds; test accuracy on the full
# 10,000-image test set against the float model's, and the held-out output
# reconstruction error before fine-tuning.
#
#   benches/channel-pruned.sh MODEL.pf [STEPS] [SELECTIONS]
#                    (default 600 fine-tuning steps, selections "lasso random")
#
# e.g. with the LeNet of benches/tflite-int8.sh: benches/channel-pruned.sh out/int8/lenet-0.pf
set -euo pipefail
source "$(dirname "$0")/lib.sh"
model="$1"; steps="${2:-600}"; selections="${3:-lasso random}"
bench_setup
for sel in $selections; do
  for seed in 0 1 2; do
    f="$out/$sel-$seed.json"
    [ -s "$f" ] && continue
    "$PF" plugin apply -p channel_pruned --model "$model" --data mnist:data/mnist \
      --target flops=0.5 --set selection="$sel" --finetune-steps "$steps" --lr 0.01 \
      --seed "$seed" --json > "$f.part"
    mv "$f.part" "$f"
  done
done
python3 - "$out" $selections <<'PY'
import json, statistics, sys
out, sels = sys.argv[1], sys.argv[2:]
print("| selection | float test accuracy | MACs ratio | reconstruction error (held out) | fine-tuned test accuracy (seeds 0, 1, 2) | mean ± spread | lost (points) |")
print("|---|---|---|---|---|---|---|")
for sel in sels:
    runs = [json.load(open(f"{out}/{sel}-{s}.json")) for s in range(3)]
    before = runs[0]["test_accuracy_before"] * 100
    accs = [r["test_accuracy_after"] * 100 for r in runs]
    errs = [r["plugin_report"]["reconstruction_error"] for r in runs]
    mean = statistics.mean(accs)
    spread = (max(accs) - min(accs)) / 2
    err = f"{statistics.mean(errs):.4f}" + ("" if max(errs) - min(errs) < 1e-9 else f" ± {(max(errs)-min(errs))/2:.4f}")
    print(f"| {sel} | {before:.2f}% | {runs[0]['measured']['macs_ratio']:.3f} | {err} | "
          f"{', '.join(f'{x:.2f}%' for x in accs)} | {mean:.2f} ± {spread:.2f}% | {before - mean:.2f} |")
PY
