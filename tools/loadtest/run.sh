#!/usr/bin/env bash
# The media benchmark: Camerata and Janus under the same load, one after the other, inside a
# network namespace that has only loopback and a veth pair (Janus will not use loopback), so
# no packet leaves the machine. Writes docs/benchmarks.md and docs/benchmarks.png.
#
#   bash tools/loadtest/run.sh            the full ladder (about 10 minutes)
#   bash tools/loadtest/run.sh --smoke    a tiny run that checks the tool works
#
# Extra arguments go to the tool (see `loadtest --help`).
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v janus >/dev/null || need+=(janus)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
python3 -c 'import venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null
fi
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_BUILD_TARGET="$triple"
cargo build --release -p camerata-server -p loadtest
bin="target/$triple/release"
smoke=0
for a in "$@"; do [ "$a" = "--smoke" ] && smoke=1; done
out=(--camerata-bin "$bin/camerata")
if [ $smoke = 0 ]; then
  out+=(--report target/loadtest/report.md --csv target/loadtest/ladder.csv)
fi
mkdir -p target/loadtest
unshare -n bash -c '
  set -e
  ip link set lo up
  ip link add lt0 type veth peer name lt1
  ip addr add 10.200.0.1/24 dev lt0
  ip link set lt0 up
  ip link set lt1 up
  exec "$@"
' loadtest "$bin/loadtest" "${out[@]}" "$@"
if [ $smoke = 0 ]; then
  # The chart: matplotlib in a virtual environment of its own (PyPI).
  venv=target/loadtest/venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c 'import matplotlib' 2>/dev/null || "$venv/bin/pip" install -q matplotlib==3.9.2
  "$venv/bin/python" tools/loadtest/chart.py target/loadtest/ladder.csv docs/benchmarks.png
  # The cluster section (tools/loadtest/cluster.sh) is kept.
  cluster=$(sed -n '/<!-- cluster:start -->/,/<!-- cluster:end -->/p' docs/benchmarks.md 2>/dev/null || true)
  {
    cat tools/loadtest/benchmarks-head.md
    cat target/loadtest/report.md
    echo '![CPU per forwarded packet and memory per subscriber against subscribers](benchmarks.png)'
    if [ -n "$cluster" ]; then echo; echo "$cluster"; fi
  } > docs/benchmarks.md
  echo "wrote docs/benchmarks.md and docs/benchmarks.png"
fi
