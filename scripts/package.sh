#!/usr/bin/env bash
# Build the Azure Functions deploy package for the Flex Consumption (Linux x86_64) workers:
#
#   scripts/package.sh          ->  dist/app/ (the layout) and dist/sixpence-functions.zip
#
# Layout: host.json, one folder per function copied from function-specs/, and the release binary
# `sixpence` (mode 755, kept in the zip as Unix permissions; the host does not chmod it on Flex).
# Nothing else: development crates (workspace members under dev/) never enter the package.
#
# glibc floor: the binary is linked against glibc ${GLIBC_FLOOR} symbol versions with cargo-zigbuild
# (zig as the linker), so it runs on any worker image with glibc >= ${GLIBC_FLOOR}, whatever this
# machine has (Debian 12 here, glibc 2.36: a plain build would need GLIBC_2.34). The Functions v4
# Linux images are Debian 11 "bullseye" (glibc 2.31) and Debian 12 "bookworm" (glibc 2.36); Microsoft
# does not publish which one the Flex custom runtime uses, so the floor is the older one.
# (musl would avoid glibc altogether, but rustup cannot fetch the musl std on these machines.)
#
# Needs: cargo, cargo-zigbuild (cargo install --locked cargo-zigbuild@0.24.1), zig (the PyPI
# package ziglang, from requirements-dev.txt, or a zig on PATH), python3, objdump (binutils).
# Honours CARGO_TARGET_DIR; SIXPENCE_DIST_DIR overrides the output folder (default: dist/).
set -euo pipefail

GLIBC_FLOOR="2.31"
TARGET="x86_64-unknown-linux-gnu"
BIN="sixpence"
ZIP_NAME="sixpence-functions.zip"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="${SIXPENCE_DIST_DIR:-$root/dist}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

die() { echo "package.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
cargo zigbuild --help >/dev/null 2>&1 || die "cargo-zigbuild not found: cargo install --locked cargo-zigbuild@0.24.1"
command -v objdump >/dev/null || die "objdump not found: apt-get install binutils"
command -v python3 >/dev/null || die "python3 not found"

# zig: prefer the project venv's ziglang package, then a zig on PATH.
if [[ -z "${CARGO_ZIGBUILD_PYTHON_PATH:-}" && -x "$root/.venv/bin/python" ]] \
    && "$root/.venv/bin/python" -m ziglang version >/dev/null 2>&1; then
  export CARGO_ZIGBUILD_PYTHON_PATH="$root/.venv/bin/python"
fi
if [[ -z "${CARGO_ZIGBUILD_PYTHON_PATH:-}" ]] && ! command -v zig >/dev/null \
    && ! python3 -m ziglang version >/dev/null 2>&1; then
  die "zig not found: python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt (ziglang)"
fi

[[ -f "$root/host.json" ]] || die "host.json missing at the repo root"
[[ -d "$root/function-specs" ]] || die "function-specs/ missing"

echo "package.sh: building $BIN (release, $TARGET, glibc $GLIBC_FLOOR)" >&2
(cd "$root" && cargo zigbuild --release --locked --package "$BIN" --bin "$BIN" --target "$TARGET.$GLIBC_FLOOR")
binary="$target_dir/$TARGET/release/$BIN"
[[ -x "$binary" ]] || die "build produced no binary at $binary"

# The floor holds: no GLIBC_x.y symbol version above it.
needed="$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1 || true)"
if [[ -n "$needed" ]] && [[ "$(printf '%s\n%s\n' "$needed" "$GLIBC_FLOOR" | sort -V | tail -n 1)" != "$GLIBC_FLOOR" ]]; then
  die "$binary needs GLIBC_$needed, above the floor $GLIBC_FLOOR"
fi

rm -rf "$dist/app" "$dist/$ZIP_NAME"
mkdir -p "$dist/app"
cp "$root/host.json" "$dist/app/host.json"
count=0
for spec in "$root"/function-specs/*/; do
  name="$(basename "$spec")"
  [[ -f "$spec/function.json" ]] || die "function-specs/$name has no function.json"
  cp -R "$spec" "$dist/app/$name"
  count=$((count + 1))
done
[[ $count -gt 0 ]] || die "function-specs/ holds no function"
cp "$binary" "$dist/app/$BIN"
chmod 755 "$dist/app/$BIN"

python3 - "$dist/app" "$dist/$ZIP_NAME" "$BIN" <<'PY'
"""Zip the layout with Unix permissions (made by Unix), so the binary stays executable on Linux."""
import json, os, stat, sys, zipfile

src, out, binary = sys.argv[1], sys.argv[2], sys.argv[3]
exe = json.load(open(os.path.join(src, "host.json")))["customHandler"]["description"]["defaultExecutablePath"]
if exe != binary:
    sys.exit(f"package.sh: host.json defaultExecutablePath is {exe!r}, expected {binary!r}")

paths = []
for d, dirs, files in os.walk(src):
    dirs.sort()
    paths += [os.path.join(d, f) for f in sorted(files)]

with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
    for path in paths:
        rel = os.path.relpath(path, src).replace(os.sep, "/")
        info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
        info.create_system = 3  # Unix, so external_attr's high 16 bits are read as st_mode
        mode = 0o755 if rel == binary else 0o644
        info.external_attr = (stat.S_IFREG | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            z.writestr(info, f.read())
print(f"package.sh: wrote {out} ({len(paths)} files)", file=sys.stderr)
PY
echo "$dist/$ZIP_NAME"
