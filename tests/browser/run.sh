#!/usr/bin/env bash
# Runs the browser suites inside a network namespace that has only loopback, so nothing the
# browsers or servers do can reach another address.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Chromium leaves folders in TMPDIR: keep them under target/.
mkdir -p target/chrome-tmp
export TMPDIR="$PWD/target/chrome-tmp"
exec unshare -n bash -c 'ip link set lo up && node --test --test-concurrency=1 tests/browser/'
