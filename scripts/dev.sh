#!/usr/bin/env bash
# `make dev`: Sixpence on this machine with no Azure account. Starts Azurite (data kept under
# .local/azurite), builds the workspace and runs the local Functions host, which starts `sixpence`
# and serves http://127.0.0.1:7071/api/...; Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$repo_root"

ensure_node_tools

mkdir -p .local/azurite
for port in 10000 10001 10002 7071; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port is already in use (another Azurite or local host running?)" >&2
    exit 1
  fi
done

echo "==> starting Azurite on 127.0.0.1:10000-10002 (data in .local/azurite)"
node_modules/.bin/azurite --silent --skipApiVersionCheck --disableTelemetry \
  --location .local/azurite \
  --blobHost 127.0.0.1 --blobPort 10000 \
  --queueHost 127.0.0.1 --queuePort 10001 \
  --tableHost 127.0.0.1 --tablePort 10002 &
azurite_pid=$!
trap 'kill "$azurite_pid" 2>/dev/null || true' EXIT INT TERM

echo "==> building"
cargo build --workspace --bins

echo "==> starting the local Functions host"
target/debug/sixpence-local-host --app-root "$repo_root" "$@"
