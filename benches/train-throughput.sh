#!/usr/bin/env bash
# Training and evaluation throughput of pf against PyTorch on CPU: same
# architecture, batch, input size and thread count, in one run.
#
#   benches/train-throughput.sh [THREADS]      (ROUNDS=N for more rounds, default 3)
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
rounds="${ROUNDS:-3}"
row() { # model batch size steps eval_batches [width]
  local m=$1 b=$2 s=$3 n=$4 e=$5 w=${6:-1.0}
  local ours=() theirs=()
  # Alternate the two programs, several rounds, and keep each side's median:
  # the machine's speed drifts by 10-25 % over minutes.
  for _ in $(seq "$rounds"); do
    ours+=("$($pf --threads "$threads" bench --json --model "$m" --batch-size "$b" --input-size "$s" --steps "$n" --eval-batches "$e" --width "$w" | tr -d '\n')")
    theirs+=("$(.venv-bench/bin/python benches/torch_peer.py --threads "$threads" --model "$m" --batch-size "$b" --input-size "$s" --steps "$n" --eval-batches "$e" --width "$w" 2>/dev/null)")
  done
  python3 - "$m" "$b" "$s" "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${theirs[@]}")" <<'PY'
import json, statistics, sys
m, b, s = sys.argv[1:4]
ours = [json.loads(l) for l in sys.argv[4].splitlines() if l.strip()]
theirs = [json.loads(l) for l in sys.argv[5].splitlines() if l.strip()]
for kind in ("train", "eval"):
    o = statistics.median(r[f"{kind}_images_per_second"] for r in ours)
    t = statistics.median(r[f"{kind}_images_per_second"] for r in theirs)
    print(f"| {m} | {s}×{s} | {b} | {kind} | {o:.1f} | {t:.1f} | {o / t:.2f}× |")
PY
}
echo "threads: $threads, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| model | input | batch | phase | pf images/s | PyTorch images/s | pf / PyTorch |"
echo "|---|---|---|---|---|---|---|"
row resnet20 128 32 8 10
row resnet20 32 32 16 20
row mobilenet_v1 128 32 8 10
row mobilenet_v1 8 224 4 6
