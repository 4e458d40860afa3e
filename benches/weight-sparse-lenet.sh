#!/usr/bin/env bash
# weight_sparse on LeNet / MNIST: for each seed, train the baseline (10 epochs,
# as benches/lenet-mnist.sh), prune to 80 % sparsity with the weight_sparse
# plugin during fine-tuning, and report test accuracy before and after with
# the sparsity counted by the host.
#
#   benches/weight-sparse-lenet.sh [SEED ...]       (default: seeds 0 1 2)
#   STEPS=2000 SPARSITY=0.8 benches/weight-sparse-lenet.sh
#   BASELINES=DIR   reuse DIR/lenet-SEED.pf instead of training
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/fetch-mnist.sh >/dev/null
scripts/build-plugins.sh --release
PF=target/release/pf
STEPS="${STEPS:-2000}"
SPARSITY="${SPARSITY:-0.8}"
out="${BASELINES:-$(mktemp -d)}"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
echo "| seed | baseline test accuracy | after ${SPARSITY} sparsity, ${STEPS} fine-tuning steps | accuracy lost | sparsity (host count) | fine-tune time |"
echo "|---|---|---|---|---|---|"
for s in "${seeds[@]}"; do
  if [ ! -f "$out/lenet-$s.pf" ]; then
    "$PF" train --model lenet --data mnist:data/mnist --epochs 10 --batch-size 64 --lr 0.05 --nesterov \
      --seed "$s" --json -o "$out/lenet-$s.pf" > "$out/base-$s.json"
  fi
  "$PF" plugin apply -p weight_sparse --model "$out/lenet-$s.pf" --data mnist:data/mnist \
    --set "sparsity=$SPARSITY" --finetune-steps "$STEPS" --lr 0.01 --seed "$s" \
    -o "$out/lenet-$s-sparse.pf" --json > "$out/sparse-$s.json"
  python3 - "$out/sparse-$s.json" "$s" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b, a = r["test_accuracy_before"] * 100, r["test_accuracy_after"] * 100
print(f"| {sys.argv[2]} | {b:.2f}% | {a:.2f}% | {b - a:+.2f} | {r['measured']['sparsity'] * 100:.2f}% | {r['seconds']['finetune']:.0f} s |")
PY
done
python3 - "$out" "${seeds[@]}" <<'PY'
import json, sys
d = sys.argv[1]
rs = [json.load(open(f"{d}/sparse-{s}.json")) for s in sys.argv[2:]]
lost = [(r["test_accuracy_before"] - r["test_accuracy_after"]) * 100 for r in rs]
print(f"\nmean accuracy lost: {sum(lost) / len(lost):.3f} points over {len(rs)} seeds")
PY
