#!/usr/bin/env bash
# pf's TFLite files against TensorFlow's own converter, in one run:
# ResNet-20 (32×32) and MobileNetV1 (224×224), each as float32, int8,
# pruned to about half the MACs (float32), and pruned + int8. pf writes its
# eight files; TensorFlow's TFLiteConverter converts the same architectures
# with the same weights (benches/tf_convert.py rebuilds each pf float32 file
# as a TensorFlow graph of raw ops, then converts it, float32 and full-integer
# int8 with float input/output, as pf's default). All sixteen files are timed
# in the official LiteRT interpreter (XNNPACK), in alternation over ROUNDS
# rounds of RUNS runs; the table gives the median of the round medians.
#
#   benches/tflite-vs-tensorflow.sh              (RUNS=200 ROUNDS=3 THREADS=1)
#   THREADS=2 benches/tflite-vs-tensorflow.sh
#
# Pruning as in benches/tflite-latency.sh: ResNet-20's inner convolutions
# halved, MobileNetV1 kept at 0.7 in every prunable group. Weights are fresh
# (latency does not depend on their values). Calibration uses synthetic
# images (an image folder written here), for pf and TensorFlow alike.
# Installs tensorflow-cpu into target/tf-venv (about 1.6 GB); CI never runs this.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
RUNS="${RUNS:-200}"; ROUNDS="${ROUNDS:-3}"; THREADS="${THREADS:-1}"
cargo build -p pf --release --locked --quiet
PF="$root/target/release/pf"
if ! target/litert-venv/bin/python -c "import ai_edge_litert" 2>/dev/null; then
  rm -rf target/litert-venv && python3 -m venv target/litert-venv
  target/litert-venv/bin/pip install -q ai-edge-litert==2.3.0 tflite==2.18.0
fi
if ! target/tf-venv/bin/python -c "import tensorflow, tflite" 2>/dev/null; then
  rm -rf target/tf-venv && python3 -m venv target/tf-venv
  target/tf-venv/bin/pip install -q tensorflow-cpu==2.21.0 tflite==2.18.0
fi
export PF_LITERT_PYTHON="$root/target/litert-venv/bin/python"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
tfv="$(target/tf-venv/bin/python -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); LiteRT $("$PF_LITERT_PYTHON" -c 'from importlib.metadata import version; print(version("ai-edge-litert"))'); TensorFlow $tfv; $THREADS thread(s); files in $out"

# Synthetic calibration images: an image folder for pf, the same pixels
# (scaled to [0, 1] and standardised per channel) as .npy for TensorFlow.
target/tf-venv/bin/python - "$out" <<'PY'
import os, struct, sys, zlib
import numpy as np
out = sys.argv[1]
def png(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\0" + img[y].tobytes() for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
rng = np.random.default_rng(0)
for size in (32, 224):
    imgs = []
    for cls in ("a", "b"):
        d = f"{out}/images{size}/{cls}"
        os.makedirs(d, exist_ok=True)
        for i in range(40):
            # Smooth random fields, like natural images in their statistics.
            small = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
            img = np.kron(small, np.ones((size // 8, size // 8, 1)))
            img = np.clip(img + rng.normal(0, 16, img.shape), 0, 255).astype(np.uint8)
            png(f"{d}/{i:03d}.png", img)
            imgs.append(img.astype(np.float32) / 255)
    x = np.stack(imgs)
    np.save(f"{out}/calib{size}.npy", (x - x.mean((0, 1, 2))) / x.std((0, 1, 2)))
PY

inner=$(for s in 1 2 3; do for b in 0 1 2; do printf 'layer%s.%s.a.conv,' "$s" "$b"; done; done)
"$PF" prune resnet20 --layers "${inner%,}" --keep 0.5 -o "$out/resnet20-pruned.pf" --json > "$out/resnet20-prune.json"
"$PF" prune mobilenet_v1 --keep 0.7 -o "$out/mobilenet_v1-pruned.pf" --json > "$out/mobilenet_v1-prune.json"
for m in resnet20 mobilenet_v1; do
  size=32; [ "$m" = mobilenet_v1 ] && size=224
  for v in "" "-pruned"; do
    src="$m"; [ -n "$v" ] && src="$out/$m$v.pf"
    "$PF" export "$src" -o "$out/pf-$m$v-f32.tflite" > /dev/null
    "$PF" export "$src" -o "$out/pf-$m$v-int8.tflite" --int8 --data "folder:$out/images$size" \
      --image-size "$size" --calibration-images 64 > /dev/null
    target/tf-venv/bin/python benches/tf_convert.py "$out/pf-$m$v-f32.tflite" \
      "$out/tf-$m$v-f32.tflite" "$out/tf-$m$v-int8.tflite" "$out/calib$size.npy" 2> "$out/tf-$m$v.log"
  done
done

files=()
for m in resnet20 mobilenet_v1; do for v in "" "-pruned"; do for p in f32 int8; do
  files+=("pf-$m$v-$p" "tf-$m$v-$p")
done; done; done
for round in $(seq 1 "$ROUNDS"); do
  for f in "${files[@]}"; do
    "$PF" bench-tflite "$out/$f.tflite" --runs "$RUNS" --threads "$THREADS" --json > "$out/$f.$round.json"
  done
done

python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def get(name):
    runs = [json.load(open(f"{out}/{name}.{r}.json")) for r in range(1, rounds + 1)]
    return statistics.median(r["median_ms"] for r in runs), runs[0]["bytes"], runs[0]["ops"]
print("| model | variant | MACs | pf ms | TF ms | pf / TF time | pf bytes | TF bytes | pf / TF size |")
print("|---|---|---|---|---|---|---|---|---|")
for m in ["resnet20", "mobilenet_v1"]:
    p = json.load(open(f"{out}/{m}-prune.json"))
    for v, label, macs in [("", "", p["macs_before"]), ("-pruned", "pruned, ", p["macs_after"])]:
        for prec in ["f32", "int8"]:
            (pm, pb, _), (tm, tb, _) = get(f"pf-{m}{v}-{prec}"), get(f"tf-{m}{v}-{prec}")
            name = label + ("float32" if prec == "f32" else "int8")
            print(f"| {m} | {name} | {macs/1e6:.2f}M | {pm:.3f} | {tm:.3f} | {pm/tm:.2f} | {pb:,} | {tb:,} | {pb/tb:.3f} |")
print()
print("| model | precision | pf: pruned speed-up | TF: pruned speed-up |")
print("|---|---|---|---|")
for m in ["resnet20", "mobilenet_v1"]:
    for prec in ["f32", "int8"]:
        pf_full, pf_pr = get(f"pf-{m}-{prec}")[0], get(f"pf-{m}-pruned-{prec}")[0]
        tf_full, tf_pr = get(f"tf-{m}-{prec}")[0], get(f"tf-{m}-pruned-{prec}")[0]
        print(f"| {m} | {prec} | {pf_full/pf_pr:.2f}× | {tf_full/tf_pr:.2f}× |")
PY
