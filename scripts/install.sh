#!/usr/bin/env bash
# Installs pf into PREFIX: the release binary as PREFIX/bin/pf and the
# built-in plugins (NAME.wasm, any NAME.manifest.json, plugins.lock) in
# PREFIX/share/pf/plugins, where PREFIX/bin/pf finds them. Every file is
# readable by every user (binary 0755, plugins 0644).
#
#   scripts/install.sh PREFIX                 build (release) and install
#   scripts/install.sh --bin PATH PREFIX      install an already built pf
#                                             with the plugins in target/plugins
#   scripts/install.sh --bin PATH --plugins DIR PREFIX
#
# Without --bin it runs scripts/build-plugins.sh --release, which builds the
# release pf and, with it, the plugins (installing the wasm32 toolchain when
# missing). Only the plugins pinned in plugins.lock are installed, never the
# test fixtures that share target/plugins. e.g. scripts/install.sh ~/.local
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
bin=""
plugins="$repo/target/plugins"
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="${2:?--bin needs a path}"; shift 2 ;;
    --plugins) plugins="${2:?--plugins needs a folder}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
    *)
      if [ -n "$prefix" ]; then echo "error: one PREFIX only (got $prefix and $1)" >&2; exit 2; fi
      prefix="$1"; shift ;;
  esac
done
if [ -z "$prefix" ]; then
  echo "error: give the PREFIX to install into, e.g. scripts/install.sh ~/.local" >&2
  exit 2
fi
# Paths are the caller's (relative to where this runs); then work from the
# repository root.
abs() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
prefix="$(abs "$prefix")"
plugins="$(abs "$plugins")"
[ -z "$bin" ] || bin="$(abs "$bin")"
cd "$repo"

if [ -z "$bin" ]; then
  # The release pf, and the plugins built by it. The binary is then copied:
  # `cargo install --path host --root PREFIX` would reuse this build too (it
  # builds in the workspace's target/), but it contacts the crates.io index
  # and leaves its .crates.toml bookkeeping in PREFIX.
  bash scripts/build-plugins.sh --release
  bin="target/release/pf"
fi
if [ ! -x "$bin" ]; then
  echo "error: $bin is not an executable pf; build it (cargo build --release -p pf) or leave out --bin" >&2
  exit 1
fi
lock="$plugins/plugins.lock"
if [ ! -f "$lock" ]; then
  echo "error: $lock is missing: build the plugins first (scripts/build-plugins.sh --release)" >&2
  exit 1
fi
# The built-in plugins are the names plugins.lock pins, one per line of its
# pretty-printed JSON: "NAME": "sha256:...".
mapfile -t names < <(sed -n 's/^ *"\([A-Za-z0-9_-]*\)": *"sha256:[0-9a-f]*",\{0,1\} *$/\1/p' "$lock")
if [ "${#names[@]}" -eq 0 ]; then
  echo "error: $lock pins no plugins; rebuild them with scripts/build-plugins.sh --release" >&2
  exit 1
fi
for n in "${names[@]}"; do
  if [ ! -f "$plugins/$n.wasm" ]; then
    echo "error: $plugins/$n.wasm (pinned in $lock) is missing; rebuild the plugins with scripts/build-plugins.sh --release" >&2
    exit 1
  fi
done

share="$prefix/share/pf/plugins"
# Folders this creates are 0755 whatever the umask, so that every user can
# reach the plugins; existing ones (/usr/local, ~/.local) keep their mode.
for d in "$prefix" "$prefix/bin" "$prefix/share" "$prefix/share/pf" "$share"; do
  [ -d "$d" ] || install -d -m 0755 "$d"
done
install -m 0755 "$bin" "$prefix/bin/pf"
# Replace the previous install's plugins: a stale component left beside a
# new lock would load as an unsigned third-party plugin.
rm -f "$share"/*.wasm "$share"/*.manifest.json "$share"/*.sig.json "$share/plugins.lock"
for n in "${names[@]}"; do
  install -m 0644 "$plugins/$n.wasm" "$share/$n.wasm"
  for side in manifest.json sig.json; do
    if [ -f "$plugins/$n.$side" ]; then
      install -m 0644 "$plugins/$n.$side" "$share/$n.$side"
    fi
  done
done
install -m 0644 "$lock" "$share/plugins.lock"
echo "installed $prefix/bin/pf and ${#names[@]} built-in plugins in $share" >&2
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on PATH; add it, or run $prefix/bin/pf" >&2 ;;
esac
echo "check the installation with: $prefix/bin/pf doctor" >&2
