#!/usr/bin/env bash
# The cluster benchmark: one publisher and 60 subscribers in one room on 1, 2 and 3 Camerata
# nodes sharing a PostgreSQL database (started here, inside a loopback-only network
# namespace, and stopped by PID); with N nodes the room's owner carries 60/N subscribers and
# the others get theirs over the media relay. Writes the cluster section of
# docs/benchmarks.md.
#
#   bash tools/loadtest/cluster.sh            the three runs (about 2 minutes)
#   bash tools/loadtest/cluster.sh --smoke    a tiny run that checks the tool works
#
# LOADTEST_BIN and CAMERATA_BIN name binaries already built (the test command's); otherwise
# both are built in release mode. Extra arguments go to the tool (see `loadtest --help`).
set -euo pipefail
cd "$(dirname "$0")/../.."
smoke=0
for a in "$@"; do [ "$a" = "--smoke" ] && smoke=1; done
if [ -n "${LOADTEST_BIN:-}" ] && [ -n "${CAMERATA_BIN:-}" ]; then
  loadtest="$LOADTEST_BIN"
  camerata="$CAMERATA_BIN"
else
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  export CARGO_BUILD_TARGET="$triple"
  cargo build --release -p camerata-server -p loadtest
  loadtest="target/$triple/release/loadtest"
  camerata="target/$triple/release/camerata"
fi
pg="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pg/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
work="$PWD/target/loadtest-cluster"
mkdir -p "$work"
report="$work/cluster.md"
rm -f "$report"
unshare -n bash -c '
  set -e
  ip link set lo up
  pg="$1"; shift
  d=$(mktemp -d /tmp/camerata-bench-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres "$d"; as=(runuser -u postgres --); else as=(); fi
  "${as[@]}" "$pg/initdb" -D "$d/data" -U postgres -A trust --no-sync >/dev/null
  "${as[@]}" "$pg/pg_ctl" -D "$d/data" -l "$d/log" -w \
    -o "-h 127.0.0.1 -p 55999 -k $d -c fsync=off" start >/dev/null
  pid=$(head -n 1 "$d/data/postmaster.pid")
  stop() { kill -INT "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; rm -rf "$d"; }
  trap stop EXIT
  "$@" --cluster-db postgres://postgres@127.0.0.1:55999/postgres --psql "$pg/psql"
' bench "$pg" "$loadtest" --camerata-bin "$camerata" --work "$work" --cluster-report "$report" "$@"
if [ $smoke = 0 ]; then
  python3 - "$report" <<'PY'
import re, sys
section = open(sys.argv[1]).read()
start, end = "<!-- cluster:start -->", "<!-- cluster:end -->"
text = open("docs/benchmarks.md").read()
block = (f"{start}\n## A cluster: 1 publisher, 60 subscribers on 1, 2 and 3 nodes\n\n"
         "`bash tools/loadtest/cluster.sh` (this machine: 2 cores; every node, the database and the "
         "load tool on it). With N nodes the owner carries 60/N subscribers; the others receive "
         "the stream once each over the media relay and fan it out. Idle CPU is each node's over "
         "the same window before the room existed (lease renewals, timers): what a node costs "
         "with nothing to forward. The host is a shared VM: figures move by tens of percent "
         "between runs; compare rows of one run.\n\n" + section + f"\n{end}\n")
if start in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end) + "\n?", lambda _: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block
open("docs/benchmarks.md", "w").write(text)
print("wrote the cluster section of docs/benchmarks.md")
PY
fi
