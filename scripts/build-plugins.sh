#!/usr/bin/env bash
# Builds every plugin under plugins/ into a WebAssembly component in
# target/plugins/NAME.wasm (with --fixtures, the test fixtures under
# tests/plugins/ too; with --release, through a release build of pf, which the
# README's main job then reuses). Installs the wasm32 toolchain when none is present:
# rustup's wasm32-unknown-unknown target is used where installed, otherwise
# Debian's rustc-web + rust-web-src + lld build std from source.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=0
profile=debug
for arg in "$@"; do
  case "$arg" in
    --fixtures) fixtures=1 ;;
    --release) profile=release ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $arg (use --fixtures, --release)" >&2; exit 2 ;;
  esac
done

have_rustup_target() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown
}
have_debian_toolchain() {
  [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] \
    && compgen -G '/usr/lib/llvm-*/bin/wasm-ld' >/dev/null
}
if ! have_rustup_target && ! have_debian_toolchain; then
  if ! command -v apt-get >/dev/null; then
    echo "error: no wasm32 toolchain; run: rustup target add wasm32-unknown-unknown" >&2
    exit 1
  fi
  echo "installing the wasm32 toolchain (Debian rustc-web, cargo-web, rust-web-src, lld)..." >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null \
    || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld >/dev/null
fi

# pf itself does the build: it drives cargo, encodes components with
# wit-component and refuses any that import more than pf's interfaces.
if [ "$profile" = release ]; then
  cargo build --release -p pf --locked --quiet
else
  # The whole workspace, as `cargo test --workspace` builds it: the same
  # feature unification, so the test run reuses these artifacts.
  cargo build --workspace --locked --quiet
fi
pf="target/$profile/pf"
"$pf" plugin build
if [ "$fixtures" -eq 1 ]; then
  # Fixtures include a plugin that imports WASI on purpose (the loader must
  # refuse it), so the import check only reports here.
  "$pf" plugin build --all --allow-foreign-imports
  # A crate outside the workspace, built the way a third-party author would.
  "$pf" plugin build tests/plugins/outside_magnitude --target-dir target/wasm --out target/plugins
fi
