#!/usr/bin/env bash
# Runs every pf test, after the formatting and lint checks (cargo fmt, cargo
# clippy with warnings as errors). This is the README's test command and what
# CI runs. Needs only a Rust toolchain (cargo); everything else is built or
# installed here, the wasm32 toolchain for the plugins and PostgreSQL for the
# study tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed; install Rust from https://rustup.rs" >&2
  exit 1
fi
# Formatting and lints first, so that a slip fails in seconds rather than
# after the build and the tests. rustfmt and clippy come with rustup's default
# profile; a minimal toolchain gets them here.
need_component() { # CARGO_SUBCOMMAND RUSTUP_COMPONENT
  if ! cargo "$1" --version >/dev/null 2>&1; then
    if ! command -v rustup >/dev/null; then
      echo "error: \`cargo $1\` is missing; install your toolchain's $2 component" >&2
      exit 1
    fi
    echo "installing the $2 component (rustup)..." >&2
    rustup component add "$2"
  fi
}
need_component fmt rustfmt
need_component clippy clippy
if ! cargo fmt --all --check; then
  echo "error: the code is not formatted as rustfmt formats it (diff above); run \`cargo fmt --all\`" >&2
  exit 1
fi
# The plugins are a workspace of their own.
if ! cargo fmt --manifest-path plugins/Cargo.toml --all --check; then
  echo "error: the plugins are not formatted as rustfmt formats them (diff above); run \`cargo fmt --manifest-path plugins/Cargo.toml --all\`" >&2
  exit 1
fi
if ! cargo clippy --workspace --all-targets --locked -- -D warnings; then
  echo "error: clippy has warnings (above), and warnings fail the tests; fix them" >&2
  exit 1
fi
# The plugins and the test fixtures, as WebAssembly components in
# target/plugins (installs the wasm32 toolchain when missing).
bash scripts/build-plugins.sh --fixtures
# The report test opens a report in headless Chromium (Debian's package),
# and fails without it.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the report test..." >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# The oracles of the export tests, in a venv of their own (about 20 s and
# 200 MB from PyPI): the official TFLite interpreter (LiteRT), ONNX Runtime,
# and the `onnx` package whose helper API builds the ONNX import tests'
# models.
if ! target/litert-venv/bin/python -c "import ai_edge_litert, onnx, onnxruntime" 2>/dev/null; then
  echo "installing LiteRT, onnx and ONNX Runtime (pip) into target/litert-venv..." >&2
  rm -rf target/litert-venv
  python3 -m venv target/litert-venv
  target/litert-venv/bin/pip install -q ai-edge-litert==2.3.0 tflite==2.18.0 \
    onnx==1.23.2 onnxruntime==1.32.0
fi
# The PostgreSQL study tests run against a real server: a throwaway cluster
# in a temp folder, on a Unix socket there only, stopped and removed on exit
# (also when a test fails). scripts/postgres.sh installs Debian's postgresql
# when initdb and pg_ctl are missing.
log="$(mktemp)"
pgdir="$(mktemp -d)"
trap 'bash scripts/postgres.sh stop "$pgdir" || true; rm -f "$log"' EXIT
PF_TEST_POSTGRES="$(bash scripts/postgres.sh start "$pgdir")"
export PF_TEST_POSTGRES
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
# The plugins' own unit tests (pure Rust logic such as weight_sparse's budget
# allocation), built natively into a target dir of their own.
cargo test --manifest-path plugins/Cargo.toml --workspace --locked \
  --target-dir target/plugins-native "$@" 2>&1 | tee -a "$log"
# One closing line over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
