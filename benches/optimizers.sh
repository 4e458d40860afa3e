#!/usr/bin/env bash
# pf's optimizers against Optuna's, on the five test problems of
# pf_sdk::testing (Branin, Hartmann-6, Rosenbrock-4, Ackley-5, mixed):
#   1. pf random, tpe (default multivariate, and univariate) and gp run as
#      WebAssembly components through the host
#      (cargo bench --bench optimizers), with the median time to suggest;
#   2. Optuna's RandomSampler, TPESampler (its default, multivariate, and
#      univariate) and GPSampler (default settings),
#      installed with torch into a venv of their own (PF_BENCH_VENV, default
#      ~/.cache/pf/bench-venv; about 5 GB, once);
#   3. the table of median simple regret at trials 10, 25 and 50.
#
#   benches/optimizers.sh                  (50 trials, 20 seeds)
#   SEEDS=5 TRIALS=30 benches/optimizers.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
TRIALS="${TRIALS:-50}"
SEEDS="${SEEDS:-20}"
out="${OUT:-$root/target/bench/optimizers}"
venv="${PF_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pf/bench-venv}"
mkdir -p "$out"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; output in $out" >&2

scripts/build-plugins.sh --release >/dev/null
cargo bench -p pf --bench optimizers --locked -- --trials "$TRIALS" --seeds "$SEEDS" \
  --optimizer random --optimizer tpe --variant tpe-univariate=tpe:multivariate=false \
  --optimizer gp --out "$out/pf.json"

if ! "$venv/bin/python" -c "import optuna, torch" 2>/dev/null; then
  echo "installing optuna and torch into $venv (once)..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q optuna torch greenlet
fi
"$venv/bin/python" benches/optuna_peer.py --trials "$TRIALS" --seeds "$SEEDS" --out "$out/optuna.json"

python3 - "$out/pf.json" "$out/optuna.json" "$TRIALS" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"] + json.load(open(sys.argv[2]))["results"]
trials = sys.argv[3]
problems = list(dict.fromkeys(r["problem"] for r in rows))
optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
get = {(r["optimizer"], r["problem"]): r for r in rows}
print(f"\nmedian simple regret at trials 10 / 25 / {trials} (lower is better); median ms per suggest\n")
print("| optimizer | " + " | ".join(problems) + " | suggest ms (median over problems) |")
print("|---" * (len(problems) + 2) + "|")
for o in optimizers:
    cells, ms = [], []
    for p in problems:
        r = get.get((o, p))
        if r is None:
            cells.append("-")
            continue
        m = r["median_regret"]
        cells.append(" / ".join(f"{m[k]:.3g}" for k in m))
        ms.append(r["median_suggest_ms"])
    ms.sort()
    print(f"| {o} | " + " | ".join(cells) + f" | {ms[len(ms) // 2]:.2f} |")

def final(o, p):
    return get[(o, p)]["median_regret"][trials]

print(f"\nverdicts at trial {trials}:")
for ours, peer in [("tpe", "optuna-tpe"), ("tpe-univariate", "optuna-tpe-univariate"), ("gp", "optuna-gp")]:
    if (ours, problems[0]) not in get or (peer, problems[0]) not in get:
        continue
    wins = [p for p in problems if final(ours, p) <= final(peer, p)]
    print(f"  pf {ours} at or below {peer} on {len(wins)}/{len(problems)}: {', '.join(wins)}")
    beats = [p for p in problems if final(ours, p) < final("random", p)]
    print(f"  pf {ours} below pf random on {len(beats)}/{len(problems)}: {', '.join(beats)}")
PY
