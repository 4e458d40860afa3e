#!/usr/bin/env bash
# Training and evaluation throughput of pf against PyTorch on CPU: same
# architecture, batch, input size and thread count, in one run.
#
#   benches/train-throughput.sh [THREADS]
#
# Installs PyTorch into .venv-bench/ on first use (the default wheel is large,
# about 5 GB with its CUDA packages; never used by the tests or CI).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
threads="${1:-2}"
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c "import torch" 2>/dev/null; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -q torch numpy
fi
cargo build --release -q -p pf
pf=target/release/pf
row() { # model batch size steps eval_batches width
  local m=$1 b=$2 s=$3 n=$4 e=$5 w=${6:-1.0}
  local ours theirs
  ours=$($pf --threads "$threads" bench --json --model "$m" --batch-size "$b" --input-size "$s" --steps "$n" --eval-batches "$e" --width "$w")
  theirs=$(.venv-bench/bin/python benches/torch_peer.py --threads "$threads" --model "$m" --batch-size "$b" --input-size "$s" --steps "$n" --eval-batches "$e" --width "$w" 2>/dev/null)
  python3 - "$m" "$b" "$s" "$ours" "$theirs" <<'PY'
import json, sys
m, b, s, ours, theirs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
for kind in ("train", "eval"):
    o, t = ours[f"{kind}_images_per_second"], theirs[f"{kind}_images_per_second"]
    print(f"| {m} | {s}×{s} | {b} | {kind} | {o:.1f} | {t:.1f} | {o / t:.2f}× |")
PY
}
echo "threads: $threads, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| model | input | batch | phase | pf images/s | PyTorch images/s | pf / PyTorch |"
echo "|---|---|---|---|---|---|---|"
row resnet20 128 32 5 10
row resnet20 32 32 10 20
row mobilenet_v1 128 32 5 10
row mobilenet_v1 8 224 2 4
