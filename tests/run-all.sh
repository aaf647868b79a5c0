#!/usr/bin/env bash
# Runs every Camerata test on a fresh Debian machine: installs what is missing (idempotent),
# builds once, starts a throwaway PostgreSQL on 127.0.0.1, runs the Rust and Node suites and a
# smoke run of each benchmark, and stops everything it started by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never NO_COLOR=1 CI="${CI:-}"

log() { printf '\n==> %s\n' "$*"; }

# 1. System packages (Debian): Node.js, PostgreSQL, Chromium, ffmpeg, Janus (the media load
#    tool's reference server and the Janus door's differential test) with its demo pages,
#    the namespace and firewall tools; only when missing.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
# Python's venv module, for the Python OpenTok SDK the OpenTok door is tested with.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v janus >/dev/null 2>&1 || missing+=(janus)
# The VideoRoom demo page and janus.js that the Janus browser suite runs unmodified.
[ -f /usr/share/janus/demos/videoroomtest.html ] || missing+=(janus-demos)
[ -f /usr/share/javascript/janus-gateway/janus.min.js ] || missing+=(libjs-janus-gateway)
# The front the cluster tests put before their nodes, as an operator does.
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# 2. npm packages at the versions of the committed lockfile. Not `npm ci`: npm 11 leaves the
#    other platforms' optional packages of @napi-rs/cli out of lockfiles and `npm ci` then
#    refuses them (npm/cli#8320); `install --no-save` installs the locked versions and
#    writes nothing. No install scripts run: the addon is built below, after the Rust build.
log "npm install (locked versions)"
npm install --no-save --no-audit --no-fund --loglevel=error --ignore-scripts
# janode (the Janus client of the Node suite) loads the unix-dgram addon at import: build it
# against the headers Debian's Node.js ships (no download).
npm rebuild unix-dgram --nodedir=/usr --loglevel=error

# The Python OpenTok SDK (the OpenTok door's second client) at the pinned versions, in a
# virtual environment under target/ (PyPI only).
log "Python packages (tests/python/requirements.txt)"
[ -x target/pyenv/bin/python ] || python3 -m venv target/pyenv
target/pyenv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt

# 3. Build once; every suite below reuses this build. The napi CLI always builds for an
#    explicit target triple, so every cargo call here uses the same one and shares one
#    target folder.
CARGO_BUILD_TARGET=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_BUILD_TARGET
log "cargo build ($CARGO_BUILD_TARGET)"
cargo build --workspace --all-targets --locked
log "napi build of the Node addon"
npm run --silent build

# 4. A throwaway PostgreSQL on 127.0.0.1, stopped by PID on exit.
PGTMP=$(mktemp -d /tmp/camerata-pg.XXXXXX)
PGPID=""
cleanup() {
  if [ -n "$PGPID" ] && kill -0 "$PGPID" 2>/dev/null; then
    kill -INT "$PGPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$PGTMP"
}
trap cleanup EXIT
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres "$PGTMP"; fi
log "starting PostgreSQL on 127.0.0.1:$PGPORT"
as_pg "$(pg_bin)/initdb" -D "$PGTMP/data" -U postgres -A trust --no-sync >/dev/null
as_pg "$(pg_bin)/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w -o "-h 127.0.0.1 -p $PGPORT -k $PGTMP -c fsync=off" start >/dev/null
PGPID=$(head -n 1 "$PGTMP/data/postmaster.pid")
export CAMERATA_TEST_PG_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
"$(pg_bin)/psql" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE camerata_node" >/dev/null
export CAMERATA_TEST_PG_NODE_URL="postgres://postgres@127.0.0.1:$PGPORT/camerata_node"

# 5. Rust suites (unit and integration).
log "cargo test"
cargo test --workspace --locked

# 6. Node suites against the built binary and the addon; type declarations checked by tsc.
log "tsc --strict --noEmit"
npm run --silent typecheck
log "node tests"
export CAMERATA_BIN="$ROOT/target/$CARGO_BUILD_TARGET/debug/camerata"
node --test --test-concurrency=1 tests/node/
log "deployment files (Kubernetes schemas, settings the server reads, the HAProxy front)"
target/pyenv/bin/python tests/deploy/check.py "$CAMERATA_BIN"

# 7. Browser suites: the real openvidu-browser in headless Chromium, in a loopback-only
#    network namespace.
log "browser tests"
bash tests/browser/run.sh

# 8. The Janus door against Janus 1.1.2 itself: the same requests to both, the transcripts
#    compared, in a namespace with loopback and the veth end Janus gathers candidates on.
log "Janus differential test"
unshare -n bash -c 'set -e
  ip link set lo up
  ip link add lt0 type veth peer name lt1
  ip addr add 10.200.0.1/24 dev lt0
  ip link set lt0 up
  ip link set lt1 up
  exec node --test --test-concurrency=1 tests/janus/'

# 9. A bounded run of every fuzz target (about 20 s each) from the committed seed corpus, in
#    a loopback-only namespace; cargo-fuzz is installed when missing (crates.io). The long
#    run is its own command: fuzz/run.sh SECONDS.
log "fuzz (bounded runs)"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
# Built here, where crates.io is reachable; the namespace below has no network.
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -O --sanitizer none)
unshare -n bash -c 'set -e; ip link set lo up; exec bash fuzz/run.sh 20'

# 10. A tiny smoke run of each benchmark (figures come from the benchmark commands in the
#    README, not from here).
log "benchmark smoke"
"$ROOT/target/$CARGO_BUILD_TARGET/debug/restbench" --smoke
node tools/sdkbench/sdkbench.js --smoke
# The media load tool against both servers, in a namespace with loopback and the veth pair
# Janus needs (the tool starts and stops both servers by PID).
unshare -n bash -c 'set -e
  ip link set lo up
  ip link add lt0 type veth peer name lt1
  ip addr add 10.200.0.1/24 dev lt0
  ip link set lt0 up
  ip link set lt1 up
  exec "$@"' loadtest "$ROOT/target/$CARGO_BUILD_TARGET/debug/loadtest" --smoke \
  --camerata-bin "$CAMERATA_BIN" --work "$ROOT/target/loadtest-smoke"
# The cluster benchmark (1 and 2 nodes, 4 subscribers; its own PostgreSQL in its namespace).
LOADTEST_BIN="$ROOT/target/$CARGO_BUILD_TARGET/debug/loadtest" bash tools/loadtest/cluster.sh --smoke

log "all tests passed"
