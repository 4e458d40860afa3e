#!/usr/bin/env bash
# Runs every pf test. This is the README's test command and what CI runs.
# Needs only a Rust toolchain (cargo); everything else is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed; install Rust from https://rustup.rs" >&2
  exit 1
fi
cargo test --workspace --locked "$@"
