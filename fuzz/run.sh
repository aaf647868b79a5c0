#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600; the test command runs 20), from the
# committed seed corpus (fuzz/corpus/<target>, captured from a real call) into a working
# corpus under target/fuzz-corpus/ (new inputs go there; the committed corpus is not
# written). Needs cargo-fuzz (`cargo install cargo-fuzz --locked --version 0.13.2`); the
# stable toolchain runs it with RUSTC_BOOTSTRAP=1. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run, as does any other non-zero exit of libFuzzer
# (a world that could not start, for one). Each target's whole log is kept in
# target/fuzz-logs/<target>.log. Run inside a loopback-only namespace:
#   unshare -n bash -c 'ip link set lo up && bash fuzz/run.sh 600'
# FUZZ_TARGETS="datagrams ice_tcp" picks targets. FUZZ_SANITIZER picks the sanitizer
# (default none: the fuzzed code is safe Rust, and without AddressSanitizer the build takes
# a quarter of the time and inputs run about twice as fast; `address` checks the C parts,
# SQLite and ring, as well).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
export RUSTC_BOOTSTRAP=1
read -r -a TARGETS <<<"${FUZZ_TARGETS:-rpc_frames rest_bodies sdp_offers tokens datagrams peer_datagrams ice_tcp}"
SANITIZER=${FUZZ_SANITIZER:-none}
cargo fuzz build -O --sanitizer "$SANITIZER"
mkdir -p ../target/fuzz-logs
for t in "${TARGETS[@]}"; do
  mkdir -p "../target/fuzz-corpus/$t"
  log="../target/fuzz-logs/$t.log"
  # The fuzzed server's data folder (its SQLite file grows with what the inputs create) goes
  # in a folder of this target's run, removed after it.
  export TMPDIR="$PWD/../target/fuzz-tmp/$t"
  rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
  echo "==> fuzz $t (${SECONDS_EACH}s)"
  status=0
  cargo fuzz run -O --sanitizer "$SANITIZER" "$t" "../target/fuzz-corpus/$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
  rm -rf "$TMPDIR"
  grep -E '^(fuzz world|#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==|.*panicked|.*SUMMARY|Done )' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 30 "$log" >&2
    echo "fuzz $t failed (exit $status); log: target/fuzz-logs/$t.log, inputs: fuzz/artifacts/$t" >&2
    exit 1
  fi
done
