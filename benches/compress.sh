#!/usr/bin/env bash
# pf compress, the README's main job, timed:
#   1. cold: an empty cache, so the digits baseline is trained first;
#   2. warm: the same job again with the baseline cached;
#   3. parallel trials: the same study with --jobs 1 (2 threads per trial)
#      and --jobs 2 (1 thread per trial) on the same 2 cores.
#
#   benches/compress.sh            (writes into a temporary folder)
#   TRIALS=12 benches/compress.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/build-plugins.sh --release >/dev/null
PF="$root/target/release/pf"
out="$(mktemp -d)"
export PF_CACHE_DIR="$out/cache"
TRIALS="${TRIALS:-12}"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; output in $out"

run() {  # NAME ARGS...
  local name="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$out" && "$PF" compress --study "$name/study.db" --export "$name/model.pf" \
      --report "$name/report.html" --json "$@" > "$name.json")
  t1=$(date +%s.%N)
  python3 - "$out/$name.json" "$name" "$t0" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["final"]
print(f"| {sys.argv[2]} | {float(sys.argv[4]) - float(sys.argv[3]):.1f} s | {r['seconds']['search']:.1f} s | "
      f"{r['complete']}/{r['trials']} | {f['baseline_test_accuracy']*100:.2f}% | {f['test_accuracy']*100:.2f}% | "
      f"{f['target_ratio']:.4f} |")
PY
}

echo
echo "| run | wall clock | search | complete trials | baseline test acc. | compressed test acc. | params ratio (target 0.25) |"
echo "|---|---|---|---|---|---|---|"
run cold --trials "$TRIALS"
run warm --trials "$TRIALS"
run jobs1 --trials "$TRIALS" --jobs 1 --threads-per-trial 2 --no-report
run jobs2 --trials "$TRIALS" --jobs 2 --threads-per-trial 1 --no-report
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
a = json.load(open(f"{d}/jobs1.json"))["seconds"]["search"]
b = json.load(open(f"{d}/jobs2.json"))["seconds"]["search"]
print(f"\n--jobs 2 searched in {b:.1f} s against {a:.1f} s for --jobs 1: {a / b:.2f}× faster")
PY
