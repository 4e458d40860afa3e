#!/usr/bin/env bash
# uniform_quant on MNIST: quantization-aware training of a trained model at
# 8-bit weights and activations, and at 4-bit weights with 8-bit
# activations, for three QAT seeds; test accuracy on the full 10,000-image
# test set against the float model's.
#
#   benches/uniform-quant.sh MODEL.pf [STEPS]     (default 600 fine-tuning steps)
#
# e.g. with the LeNet of benches/tflite-int8.sh: benches/uniform-quant.sh out/int8/lenet-0.pf
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/fetch-mnist.sh >/dev/null
model="$1"; steps="${2:-600}"
if [ -z "${PF:-}" ]; then
  cargo build --release -q -p pf
  PF=target/release/pf
fi
scripts/build-plugins.sh --release >/dev/null
out="$(mktemp -d)"
for cfg in "8 8" "4 8"; do
  set -- $cfg
  for seed in 0 1 2; do
    "$PF" plugin apply -p uniform_quant --model "$model" --data mnist:data/mnist \
      --set weight_bits="$1" --set activation_bits="$2" --finetune-steps "$steps" --lr 0.01 \
      --seed "$seed" --json > "$out/w$1a$2-$seed.json"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
print("| weights / activations | float test accuracy | QAT test accuracy (seeds 0, 1, 2) | mean ± spread | lost (points) | bytes ratio |")
print("|---|---|---|---|---|---|")
for w, a in [(8, 8), (4, 8)]:
    runs = [json.load(open(f"{out}/w{w}a{a}-{s}.json")) for s in range(3)]
    before = runs[0]["test_accuracy_before"] * 100
    accs = [r["test_accuracy_after"] * 100 for r in runs]
    mean = statistics.mean(accs)
    spread = (max(accs) - min(accs)) / 2
    print(f"| {w} / {a} bits | {before:.2f}% | {', '.join(f'{x:.2f}%' for x in accs)} | {mean:.2f} ± {spread:.2f}% | {before - mean:.2f} | {runs[0]['measured']['bytes_ratio']:.3f} |")
PY
