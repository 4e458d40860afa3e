#!/usr/bin/env bash
# pf's main job (the README's first command: channel_pruned × tpe at half the
# MACs on the embedded digits), measured as a user meets it:
#   1. cold: an empty cache, so the digits baseline is trained first;
#   2. warm: the same job and seed again, baseline cached: it must record
#      the same trial table (the script fails otherwise);
#   3. the result against the baseline: test accuracy, MACs, TFLite bytes
#      and median LiteRT latency (1 thread; files timed in alternation);
#   4. parallel trials: the same study with --jobs 1 (2 threads per trial)
#      and --jobs 2 (1 thread per trial) on the same 2 cores.
# The README's figures come from this script.
#
#   benches/compress.sh              (writes into a temporary folder)
#   TRIALS=12 ROUNDS=5 benches/compress.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/build-plugins.sh --release >/dev/null
PF="$root/target/release/pf"
if ! target/litert-venv/bin/python -c "import ai_edge_litert" 2>/dev/null; then
  rm -rf target/litert-venv && python3 -m venv target/litert-venv
  target/litert-venv/bin/pip install -q ai-edge-litert==2.3.0 tflite==2.18.0
fi
export PF_LITERT_PYTHON="$root/target/litert-venv/bin/python"
out="$(mktemp -d)"
export PF_CACHE_DIR="$out/cache"
TRIALS="${TRIALS:-12}"; ROUNDS="${ROUNDS:-5}"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu | sed -n 's/^Model name: *//p'); output in $out"

run() {  # NAME ARGS...
  local name="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$out" && "$PF" compress --study "$name.db" --json "$@" > "$name.json")
  t1=$(date +%s.%N)
  echo "$t0 $t1" > "$out/$name.time"
}
run cold --trials "$TRIALS"
run warm --trials "$TRIALS"
run jobs1 --trials "$TRIALS" --jobs 1 --threads-per-trial 2 --no-report
run jobs2 --trials "$TRIALS" --jobs 2 --threads-per-trial 1 --no-report

# The baseline as the job trained it (cached), exported the same way.
base=$(ls "$out"/cache/baselines/digits_cnn-*.pf | head -n 1)
"$PF" export "$base" -o "$out/baseline.tflite" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  for f in baseline cold; do
    "$PF" bench-tflite "$out/$f.tflite" --threads 1 --runs 300 --json > "$out/$f.lat.$r.json"
  done
done

python3 - "$out" "$ROUNDS" <<'PY'
import json, os, sqlite3, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    return json.load(open(f"{out}/{name}.json"))
def wall(name):
    t0, t1 = map(float, open(f"{out}/{name}.time").read().split())
    return t1 - t0
def table(name):
    # Every recorded column but the timings.
    rows = sqlite3.connect(f"{out}/{name}.db").execute(
        "SELECT number, status, params, seed, accuracy, loss, macs, nonzero_params, bytes, "
        "target_ratio, reward, error FROM trials ORDER BY number").fetchall()
    return rows

print("\n| run | wall clock | search | complete trials | baseline test acc. | compressed test acc. | MACs ratio (target 0.5) |")
print("|---|---|---|---|---|---|---|")
for name in ["cold", "warm", "jobs1", "jobs2"]:
    r, f = load(name), load(name)["final"]
    print(f"| {name} | {wall(name):.1f} s | {r['seconds']['search']:.1f} s | {r['complete']}/{r['trials']} | "
          f"{f['baseline_test_accuracy']*100:.2f}% | {f['test_accuracy']*100:.2f}% | {f['target_ratio']:.4f} |")
same = table("cold") == table("warm")
print(f"\ncold and warm runs (same seed) recorded {'the same' if same else 'DIFFERENT'} trial tables")

r = load("cold")
b, c = r["baseline"]["footprint"], r["final"]["footprint"]
lat = lambda f: statistics.median(json.load(open(f"{out}/{f}.lat.{i}.json"))["median_ms"] for i in range(1, rounds + 1))
size = lambda f: os.path.getsize(f"{out}/{f}.tflite")
print("\n| model | test accuracy | MACs | parameters | TFLite bytes | LiteRT latency, 1 thread |")
print("|---|---|---|---|---|---|")
print(f"| baseline (digits_cnn) | {r['final']['baseline_test_accuracy']*100:.2f}% | {b['macs']:,} | {b['params']:,} | {size('baseline'):,} | {lat('baseline')*1000:.1f} µs |")
print(f"| channel_pruned × tpe, flops=0.5 | {r['final']['test_accuracy']*100:.2f}% | {c['macs']:,} | {c['params']:,} | {size('cold'):,} | {lat('cold')*1000:.1f} µs |")
print(f"| ratio | {(r['final']['test_accuracy'] - r['final']['baseline_test_accuracy'])*100:+.2f} pp | {c['macs']/b['macs']:.3f} | {c['params']/b['params']:.3f} | {size('cold')/size('baseline'):.3f} | {lat('baseline')/lat('cold'):.2f}× faster |")

a = load("jobs1")["seconds"]["search"]; bb = load("jobs2")["seconds"]["search"]
print(f"\n--jobs 2 searched in {bb:.1f} s against {a:.1f} s for --jobs 1: {a / bb:.2f}× faster")
sys.exit(0 if same else 1)
PY
