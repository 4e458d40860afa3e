#!/usr/bin/env bash
# Shared studies, measured (issue 26), on a throwaway PostgreSQL
# (scripts/postgres.sh) on a Unix socket of this machine:
#  1. the database's cost per trial: the store calls of many trivial trials
#     (no training), SQLite against PostgreSQL (host/benches/study_store.rs);
#  2. search wall time of one study run by 2 `pf worker` processes × 1
#     thread each against 1 worker × 2 threads (and 1 worker running 2
#     trials at once × 1 thread), in one run, the same study settings.
# Usage: scripts/bench-distributed.sh [TRIALS [FINETUNE_STEPS [STORE_TRIALS]]]
# TRIALS=0 measures the store alone. The server fsyncs its commits, as
# SQLite does (PF_POSTGRES_DURABLE=1). Debug build (dependencies at
# opt-level 3, as the tests build them).
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-12}"
steps="${2:-300}"
store_trials="${3:-300}"
cargo build -p pf --quiet
pf="$PWD/target/debug/pf"
work="$(mktemp -d)"
pgdir="$(mktemp -d)"
trap 'bash scripts/postgres.sh stop "$pgdir" || true; rm -rf "$work"' EXIT
base="$(PF_POSTGRES_DURABLE=1 bash scripts/postgres.sh start "$pgdir")"
db="$base/postgres"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

search=(--plugin weight_sparse --optimizer random --trials "$trials" --finetune-steps "$steps"
  --retrain-epochs 0 --baseline-epochs 10 --seed 1 --no-report)

echo "== 1. store calls per trial (ms), $store_trials trivial trials each"
"$pf" compress --plugin weight_sparse --optimizer random --trials 1 --finetune-steps 10 \
  --retrain-epochs 0 --baseline-epochs 10 --study "$work/template.db" \
  --export "$work/template.pf" --no-report >/dev/null 2>&1
cargo bench -p pf --bench study_store --profile dev --quiet -- \
  "$work/template.db" "$db" "$store_trials"

[ "$trials" -gt 0 ] || exit 0
echo "== 2. wall time of a $trials-trial study ($steps fine-tuning steps per trial)"
seconds() { # CMD...: runs it, prints its wall seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}
create() { # NAME
  "$pf" compress "${search[@]}" --study "$db?study=$1" --max-trials 0 \
    --export "$work/$1.pf" >/dev/null 2>&1
}
two_workers() {
  "$pf" worker --study "$db?study=w2" --threads-per-trial 1 >/dev/null 2>&1 &
  local a=$!
  "$pf" worker --study "$db?study=w2" --threads-per-trial 1 >/dev/null 2>&1
  wait "$a"
}
one_worker_two_threads() {
  "$pf" worker --study "$db?study=w1" --threads-per-trial 2 >/dev/null 2>&1
}
one_worker_two_jobs() {
  "$pf" worker --study "$db?study=j2" --jobs 2 --threads-per-trial 1 >/dev/null 2>&1
}
create w2
create w1
create j2
echo "2 workers x 1 thread:          $(seconds two_workers) s"
echo "1 worker  x 2 threads:         $(seconds one_worker_two_threads) s"
echo "1 worker, --jobs 2 x 1 thread: $(seconds one_worker_two_jobs) s"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
