#!/usr/bin/env bash
# Runs the browser suites inside network namespaces that have only loopback, so nothing the
# browsers or servers do can reach another address; the no-udp suite's namespace also drops
# every UDP packet.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Chromium leaves folders in TMPDIR: keep them under target/.
mkdir -p target/chrome-tmp
export TMPDIR="$PWD/target/chrome-tmp"
unshare -n bash -c 'ip link set lo up && node --test --test-concurrency=1 tests/browser/*.test.js'
unshare -n bash -c 'ip link set lo up \
  && nft add table inet camerata_test \
  && nft add chain inet camerata_test input "{ type filter hook input priority 0; }" \
  && nft add rule inet camerata_test input meta l4proto udp drop \
  && node --test --test-concurrency=1 tests/browser/no-udp/'
