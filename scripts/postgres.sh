#!/usr/bin/env bash
# A throwaway PostgreSQL server for pf's tests: a cluster of its own in a
# folder, listening only on a Unix socket in that folder (no TCP port), with
# trust authentication for its superuser `postgres`.
#
#   scripts/postgres.sh start DIR   creates the cluster in DIR (a new or
#                                   empty folder), starts it and prints the
#                                   base URL the tests take from
#                                   PF_TEST_POSTGRES
#   scripts/postgres.sh stop DIR    stops it and removes DIR
#
# By hand:
#   export PF_TEST_POSTGRES="$(bash scripts/postgres.sh start /tmp/pf-pg)"
#   cargo test -p pf --test all -- postgres
#   bash scripts/postgres.sh stop /tmp/pf-pg
#
# Needs PostgreSQL's server programs (initdb, pg_ctl); Debian's `postgresql`
# package is installed when they are missing. Run as root, the server runs
# as the `postgres` user that package creates (PostgreSQL refuses root).
set -euo pipefail

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd="$1"
dir="$2"

# initdb and pg_ctl: on PATH, else Debian's versioned folder (the newest).
find_bin() {
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
    echo "$d"
  fi
}

# Runs a command as the user that owns the cluster.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
start)
  bin="$(find_bin)"
  if [ -z "$bin" ]; then
    if ! command -v apt-get >/dev/null; then
      echo "error: PostgreSQL's initdb and pg_ctl are missing; install PostgreSQL's server package" >&2
      exit 1
    fi
    echo "installing Debian's postgresql for the study tests..." >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(find_bin)"
    [ -n "$bin" ] || { echo "error: postgresql installed, but no initdb/pg_ctl found" >&2; exit 1; }
  fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -n "$(ls -A "$dir")" ]; then
    echo "error: $dir is not empty; give a new or empty folder" >&2
    exit 1
  fi
  # The socket path must fit in a sockaddr_un (107 bytes).
  if [ "${#dir}" -gt 80 ]; then
    echo "error: $dir is too long a path for a Unix socket; use a shorter folder" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # Throwaway data: no fsync (unless PF_POSTGRES_DURABLE=1, for
  # measurements); enough connections for parallel tests, each running
  # several pf processes.
  durability="-c fsync=off -c synchronous_commit=off"
  [ "${PF_POSTGRES_DURABLE:-0}" = 1 ] && durability=""
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $dir $durability -c max_connections=300" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  # The base URL: the socket folder, percent-encoded, as the host.
  printf 'postgresql://postgres@%s\n' "${dir//\//%2F}"
  ;;
stop)
  [ -d "$dir/data" ] || { rm -rf "$dir"; exit 0; }
  bin="$(find_bin)"
  if [ -n "$bin" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  usage
  ;;
esac
