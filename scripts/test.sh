#!/usr/bin/env bash
# `make test`: every test of the repository. Rust tests start their own Azurite instances on free
# loopback ports (installed from npm here), Python tests check the Bicep and the deploy package.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$repo_root"

ensure_node_tools
ensure_python_tools

echo "==> cargo test (workspace)"
cargo test --workspace --no-fail-fast

echo "==> infrastructure and packaging tests"
.venv/bin/python -m pytest tests/infra -q
