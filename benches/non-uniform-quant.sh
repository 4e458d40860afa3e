#!/usr/bin/env bash
# non_uniform_quant on MNIST: k-means codebooks of 2^BITS centroids per
# layer, fine-tuned (centroids by shared gradients, the learner's default) for three
# fine-tuning seeds; test accuracy on the full 10,000-image test set against
# the float model's, and the compressed size: the host's count and the
# saved model file (indices packed at BITS bits plus the codebooks) against
# the float model file.
#
#   benches/non-uniform-quant.sh MODEL.pf [STEPS] [BITS]   (default 600 steps, 4 bits)
#
# e.g. with the LeNet of benches/tflite-int8.sh: benches/non-uniform-quant.sh out/int8/lenet-0.pf
set -euo pipefail
source "$(dirname "$0")/lib.sh"
model="$1"; steps="${2:-600}"; bits="${3:-4}"
bench_setup
for seed in 0 1 2; do
  f="$out/b$bits-$seed.json"
  [ -s "$f" ] && continue
  "$PF" plugin apply -p non_uniform_quant --model "$model" --data mnist:data/mnist \
    --set bits="$bits" --finetune-steps "$steps" --lr 0.01 --seed "$seed" \
    -o "$out/b$bits-$seed.pf" --json > "$f.part"
  mv "$f.part" "$f"
done
python3 - "$out" "$bits" "$model" <<'PY'
import json, os, statistics, sys
out, bits, model = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.load(open(f"{out}/b{bits}-{s}.json")) for s in range(3)]
before = runs[0]["test_accuracy_before"] * 100
accs = [r["test_accuracy_after"] * 100 for r in runs]
mean = statistics.mean(accs)
spread = (max(accs) - min(accs)) / 2
float_file = os.path.getsize(model)
files = [os.path.getsize(f"{out}/b{bits}-{s}.pf") for s in range(3)]
print("| bits | float test accuracy | fine-tuned test accuracy (seeds 0, 1, 2) | mean ± spread | lost (points) | bytes ratio (host) | file: float → packed |")
print("|---|---|---|---|---|---|---|")
print(f"| {bits} | {before:.2f}% | {', '.join(f'{x:.2f}%' for x in accs)} | {mean:.2f} ± {spread:.2f}% | "
      f"{before - mean:.2f} | {runs[0]['measured']['bytes_ratio']:.3f} | {float_file:,} → {max(files):,} B (1/{float_file / max(files):.1f}) |")
PY
