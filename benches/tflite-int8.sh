#!/usr/bin/env bash
# Int8 TFLite export on MNIST: for LeNet and ResNet-20 (trained here, or
# given), `pf export --int8 --verify` on the full 10,000-image test set:
# float accuracy in pf, pf's simulated-int8 accuracy, LiteRT's int8 accuracy,
# LiteRT–pf top-1 agreement, and the file sizes.
#
#   benches/tflite-int8.sh [SEED]
#   LENET=a.pf RESNET20=b.pf benches/tflite-int8.sh    (trained models)
#
# Training: LeNet 8 epochs, ResNet-20 3 epochs (batch 64, SGD+Nesterov,
# cosine, lr 0.05). Needs scripts/fetch-mnist.sh's data and LiteRT
# (scripts/test.sh sets up target/litert-venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/fetch-mnist.sh >/dev/null
if [ -z "${PF:-}" ]; then
  cargo build --release -q -p pf
  PF=target/release/pf
fi
seed="${1:-0}"
out="${OUT:-out/int8}"
mkdir -p "$out"
train() { # name epochs file
  [ -f "$3" ] && return
  "$PF" train --model "$1" --data mnist:data/mnist --epochs "$2" --batch-size 64 --lr 0.05 --nesterov \
    --seed "$seed" --json -o "$3" > "$3.train.json"
}
lenet="${LENET:-$out/lenet-$seed.pf}"
resnet="${RESNET20:-$out/resnet20-$seed.pf}"
train lenet 8 "$lenet"
train resnet20 3 "$resnet"
echo "| model | float (pf) | int8 (pf simulated) | int8 (LiteRT) | LiteRT–pf agreement | float file | int8 file |"
echo "|---|---|---|---|---|---|---|"
for m in "$lenet" "$resnet"; do
  name="$(basename "$m" .pf)"
  "$PF" export "$m" -o "$out/$name-f32.tflite" --json > "$out/$name-f32.json"
  "$PF" export "$m" -o "$out/$name-int8.tflite" --int8 --data mnist:data/mnist --calibration-images 512 \
    --verify --seed "$seed" --json > "$out/$name-int8.json"
  python3 - "$out/$name-f32.json" "$out/$name-int8.json" "$name" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
q = json.load(open(sys.argv[2]))
v = q["verification"]
print(f"| {sys.argv[3]} | {v['float_accuracy']*100:.2f}% | {v['pf_accuracy']*100:.2f}% | "
      f"{v['litert_accuracy']*100:.2f}% | {v['agreement']*100:.2f}% ({v['images']} images) | "
      f"{f['bytes']:,} B | {q['bytes']:,} B |")
PY
done
