# Set-up shared by the learner benchmarks (source it, then call
# bench_setup): puts MNIST in data/mnist, builds a release pf into $PF unless
# PF is given, builds the plugins unless SKIP_PLUGIN_BUILD is set, and makes
# the output folder $out ($OUT, or a temporary one).
bench_setup() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  scripts/fetch-mnist.sh >/dev/null
  if [ -z "${PF:-}" ]; then
    cargo build --release -q -p pf
    PF=target/release/pf
  fi
  [ -n "${SKIP_PLUGIN_BUILD:-}" ] || scripts/build-plugins.sh --release >/dev/null
  out="${OUT:-$(mktemp -d)}"
  mkdir -p "$out"
}
