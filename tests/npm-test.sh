#!/usr/bin/env bash
# `npm test`: builds the addon and the server binary (one shared target folder), checks the
# type declarations and runs the Node suites. The full test command is tests/run-all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_BUILD_TARGET=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_BUILD_TARGET
npm run --silent build
cargo build -p camerata-server --bins
npm run --silent typecheck
CAMERATA_BIN="$PWD/target/$CARGO_BUILD_TARGET/debug/camerata" node --test --test-concurrency=1 tests/node/
