#!/usr/bin/env bash
# `make dev`: Sixpence on this machine with no Azure account. Builds the workspace, starts Azurite
# (data kept under .local/azurite), the simulated Azure tenant on 127.0.0.1:8089 (fixed seed, so the
# same tenant every run) and the local Functions host, which starts `sixpence` and serves
# http://127.0.0.1:7071/api/...; once the app answers, connects the demo workspace to the simulated
# tenant (`sixpence-local-host demo`, which finds what an earlier run made) and prints how to look at
# it. Ctrl-C stops everything. Extra arguments go to the local host (e.g. --set NAME=VALUE).
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$repo_root"

sim_port=8089
sim_seed=42
bin="${CARGO_TARGET_DIR:-target}/debug"

ensure_node_tools

mkdir -p .local/azurite
for port in 10000 10001 10002 7071 "$sim_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port is already in use (another Azurite, simulator or local host running?)" >&2
    exit 1
  fi
done

pids=()
stop_all() {
  trap - EXIT INT TERM
  # The local host first (it stops the handler cleanly on SIGTERM), then the simulator and Azurite.
  for pid in ${pids[@]+"${pids[@]}"}; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in ${pids[@]+"${pids[@]}"}; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

echo "==> starting Azurite on 127.0.0.1:10000-10002 (data in .local/azurite)"
node_modules/.bin/azurite --silent --skipApiVersionCheck --disableTelemetry \
  --location .local/azurite \
  --blobHost 127.0.0.1 --blobPort 10000 \
  --queueHost 127.0.0.1 --queuePort 10001 \
  --tableHost 127.0.0.1 --tablePort 10002 &
pids+=($!)

echo "==> building"
cargo build --workspace --bins

echo "==> starting the simulated Azure tenant on 127.0.0.1:$sim_port (seed $sim_seed)"
"$bin/sixpence-azure-sim" --port "$sim_port" --seed "$sim_seed" &
pids=($! "${pids[@]}")

echo "==> starting the local Functions host"
"$bin/sixpence-local-host" --app-root "$repo_root" "$@" &
pids=($! "${pids[@]}")

echo "==> connecting the demo workspace to the simulated tenant"
if ! "$bin/sixpence-local-host" demo --app-root "$repo_root" --simulator "http://127.0.0.1:$sim_port"; then
  echo "error: the demo step failed (see [demo] FAILED above); stopping" >&2
  exit 1
fi

echo "==> notification email goes to the simulated tenant's Microsoft Graph: http://127.0.0.1:$sim_port/_sim/mail"

# Until the local host exits (Ctrl-C, or the handler died).
wait "${pids[0]}"
