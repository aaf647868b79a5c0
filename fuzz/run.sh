#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600; the test command runs 20), from the
# committed seed corpus (fuzz/corpus/<target>, captured from a real call) into a working
# corpus under target/fuzz-corpus/ (new inputs go there; the committed corpus is not
# written). Needs cargo-fuzz (`cargo install cargo-fuzz --locked --version 0.13.2`); the
# stable toolchain runs it with RUSTC_BOOTSTRAP=1. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run. Run inside a loopback-only namespace:
#   unshare -n bash -c 'ip link set lo up && bash fuzz/run.sh 600'
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
export RUSTC_BOOTSTRAP=1
TARGETS=(rpc_frames rest_bodies sdp_offers tokens datagrams peer_datagrams ice_tcp)
cargo fuzz build -O
for t in "${TARGETS[@]}"; do
  mkdir -p "../target/fuzz-corpus/$t"
  echo "==> fuzz $t (${SECONDS_EACH}s)"
  cargo fuzz run -O "$t" "../target/fuzz-corpus/$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==|.*panicked|.*SUMMARY|Done )' || true
  # libFuzzer exits non-zero on a crash; grep hid the status, the artifacts folder tells.
  if ls "artifacts/$t"/crash-* "artifacts/$t"/leak-* "artifacts/$t"/oom-* >/dev/null 2>&1; then
    echo "fuzz $t found a crash: fuzz/artifacts/$t" >&2
    exit 1
  fi
done
