#!/usr/bin/env bash
# The soak benchmark (its own command, not a test): waves of sessions joining, publishing,
# subscribing, signalling and leaving against one Camerata (release build) for MINUTES
# (default 10), 100 sessions of 4 per wave, in a loopback-only namespace; the server's RSS,
# open files, tasks and peer connections sampled every 10 s; every webhook event counted.
# Writes docs/soak.md and docs/soak.png; fails when something grew after the first wave,
# a call failed or an event was not delivered.
#
#   bash tools/loadtest/soak.sh [MINUTES] [SESSIONSxSIZE]
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-10}
rooms=${2:-100x4}
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v unshare >/dev/null || need+=(util-linux)
python3 -c 'import venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null
fi
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_BUILD_TARGET="$triple"
cargo build --release -p camerata-server -p loadtest
bin="target/$triple/release"
mkdir -p target/loadtest
status=0
unshare -n bash -c 'ip link set lo up && exec "$@"' soak "$bin/loadtest" \
  --camerata-bin "$bin/camerata" --soak-minutes "$minutes" --soak-rooms "$rooms" \
  --soak-out target/loadtest || status=$?
venv=target/loadtest/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import matplotlib' 2>/dev/null || "$venv/bin/pip" install -q matplotlib==3.9.2
"$venv/bin/python" tools/loadtest/soak_chart.py target/loadtest/soak.csv docs/soak.png
{
  echo '# Soak'
  echo
  echo "Command: \`bash tools/loadtest/soak.sh $minutes $rooms\` (release build, this machine: 2 cores)."
  echo
  cat target/loadtest/soak.md
  echo
  echo '![Server RSS, open files, tasks and peer connections over the soak](soak.png)'
} > docs/soak.md
echo "wrote docs/soak.md and docs/soak.png"
exit $status
