# Shared by scripts/dev.sh and scripts/test.sh: installs the development tools the repository pins.
# Sourced, not run.

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Azurite (storage emulator) from npm, pinned by package-lock.json. Reinstalled when the lock changes.
ensure_node_tools() {
  command -v node >/dev/null || { echo "error: Node.js 20+ is required (node not found on PATH)" >&2; return 1; }
  command -v npm >/dev/null || { echo "error: npm is required (npm not found on PATH)" >&2; return 1; }
  local stamp="$repo_root/node_modules/.sixpence-lock"
  if [ ! -x "$repo_root/node_modules/.bin/azurite" ] || ! cmp -s "$repo_root/package-lock.json" "$stamp"; then
    echo "==> installing Azurite (npm ci)"
    (cd "$repo_root" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    cp "$repo_root/package-lock.json" "$stamp"
  fi
}

# Python test tools (Bicep parser, checkov, pytest) in .venv, pinned by requirements-dev.txt.
ensure_python_tools() {
  command -v python3 >/dev/null || { echo "error: Python 3.11+ is required (python3 not found on PATH)" >&2; return 1; }
  local venv="$repo_root/.venv"
  local stamp="$venv/.sixpence-requirements"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating .venv"
    python3 -m venv "$venv" || return 1
  fi
  if ! cmp -s "$repo_root/requirements-dev.txt" "$stamp"; then
    echo "==> installing Python test tools (pip install -r requirements-dev.txt)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$repo_root/requirements-dev.txt" || return 1
    cp "$repo_root/requirements-dev.txt" "$stamp"
  fi
}
