#!/usr/bin/env bash
# DDPG against random search on a per-layer search (AMC's setting): pf
# compress with weight_sparse's per-layer sparsity preferences (each with its
# layer's 8-feature context) under a params target, digits_cnn on the embedded
# digits. For each seed both optimizers run the same study settings; the
# figure is the mean reward (validation accuracy) of the last 20 trials.
#
#   benches/ddpg-per-layer.sh                       (100 trials, seeds 0 1 2)
#   TRIALS=100 SEEDS="0 1 2" STEPS=100 TARGET=params=0.1 JOBS=2 benches/ddpg-per-layer.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
TRIALS="${TRIALS:-100}"
SEEDS="${SEEDS:-0 1 2}"
STEPS="${STEPS:-100}"
TARGET="${TARGET:-params=0.1}"
JOBS="${JOBS:-2}"
out="${OUT:-$root/target/bench/ddpg-per-layer}"
mkdir -p "$out"
export PF_CACHE_DIR="${PF_CACHE_DIR:-$out/cache}"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; output in $out" >&2
scripts/build-plugins.sh --release >/dev/null
PF="$root/target/release/pf"

for seed in $SEEDS; do
  for opt in random ddpg; do
    name="$opt-seed$seed"
    rm -f "$out/$name.db"
    "$PF" compress --optimizer "$opt" --set per_layer=true --target "$TARGET" \
      --trials "$TRIALS" --finetune-steps "$STEPS" --retrain-epochs 0 --jobs "$JOBS" --seed "$seed" \
      --study "$out/$name.db" --export "$out/$name.pf" --no-report --json > "$out/$name.json"
    echo "done: $name" >&2
  done
done

python3 - "$out" "$TRIALS" "$SEEDS" <<'PY'
import sqlite3, statistics, sys
out, trials, seeds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
last = 20
print(f"\nmean reward (validation accuracy) of the last {last} of {trials} trials; failed trials count as 0\n")
print("| seed | random | ddpg | ddpg − random |")
print("|---|---|---|---|")
means = {"random": [], "ddpg": []}
for seed in seeds:
    row = {}
    for opt in means:
        db = sqlite3.connect(f"{out}/{opt}-seed{seed}.db")
        rewards = [r if r is not None else 0.0 for (r,) in
                   db.execute("SELECT reward FROM trials ORDER BY number")]
        row[opt] = statistics.mean(rewards[-last:])
        means[opt].append(row[opt])
    print(f"| {seed} | {row['random']:.4f} | {row['ddpg']:.4f} | {row['ddpg'] - row['random']:+.4f} |")
r, d = statistics.mean(means["random"]), statistics.mean(means["ddpg"])
print(f"| mean | {r:.4f} | {d:.4f} | {d - r:+.4f} |")
PY
