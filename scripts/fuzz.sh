#!/usr/bin/env bash
# Fuzzes pf's readers of untrusted files with cargo-fuzz (libFuzzer):
#
#   scripts/fuzz.sh [TARGET] [SECONDS]
#
# TARGET is one of idx, cifar, image, model, onnx, registry (default: each in
# turn); SECONDS is the time per target (default 600). The fuzzers and their
# entry points are in tests/fuzz/; each run starts from the committed corpus
# (tests/fuzz/corpus/TARGET/) and adds the new inputs that reach new code
# there; minimize it before committing (`cargo fuzz cmin`, see
# tests/README.md). A crash is saved under tests/fuzz/artifacts/TARGET/ and
# the script fails; copy the input into the corpus as a regression once the
# bug is fixed, so that tests/all/fuzz_corpus.rs replays it in every test run.
#
# Needs a Rust toolchain; installs cargo-fuzz when it is missing. libFuzzer
# needs nightly compiler flags: on a stable toolchain they are unlocked with
# RUSTC_BOOTSTRAP=1. Sanitizers are off (`-s none`: the code under test is
# safe Rust), debug assertions (integer overflow checks) on. The first build
# instruments all of pf and takes a while (about 30 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(idx cifar image model onnx registry)
target="${1:-all}"
seconds="${2:-600}"
if [ "$target" != all ] && [[ ! " ${targets[*]} " =~ " $target " ]]; then
  echo "error: unknown fuzz target \`$target\`; give one of: ${targets[*]} (or none for all)" >&2
  exit 2
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "error: SECONDS must be a whole number of seconds above 0, not \`$seconds\`" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz..." >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
[ "$target" = all ] && run=("${targets[@]}") || run=("$target")
flags=(--fuzz-dir tests/fuzz -s none -a -O)
cargo fuzz build "${flags[@]}"
for t in "${run[@]}"; do
  echo "== fuzzing $t for $seconds s" >&2
  # -rss_limit_mb / -malloc_limit_mb: an input that makes pf allocate what
  # it merely claims is a crash. -timeout: one input may take 10 s at most.
  # The corpus in git is the first folder (new inputs land there).
  cargo fuzz run "${flags[@]}" "$t" "tests/fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -print_final_stats=1
done
