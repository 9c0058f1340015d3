"""Builds the deploy package with scripts/package.sh (into a temporary folder, so dist/ is left alone)
and checks the zip the operator uploads: exactly host.json, the binary and one folder per function
spec; every spec present; nothing from the development crates (workspace members under dev/); the
binary an x86-64 ELF with Unix mode 755 recorded in the zip; host.json's defaultExecutablePath naming
it; and its glibc symbol versions no newer than the Flex worker image provides. The build needs
cargo, zig (ziglang in .venv) and objdump, and the test fails saying how to install whichever is
missing; scripts/package.sh installs its pinned cargo-zigbuild itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, function_specs, missing

# The newest glibc the Flex Consumption Linux workers are assumed to provide. The Functions v4 Linux
# images are Debian 11 "bullseye" (glibc 2.31) and Debian 12 "bookworm" (glibc 2.36); Microsoft does
# not say which one the Flex custom runtime runs on, so we hold the binary to the older.
FLEX_GLIBC = (2, 31)
BINARY = "sixpence"


def version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    if not shutil.which("cargo"):
        missing("cargo", "rustup (https://rustup.rs)")
    # cargo-zigbuild: scripts/package.sh installs its pinned version on first use.
    venv_python = Path(sys.executable)
    has_zig = shutil.which("zig") or subprocess.run([str(venv_python), "-m", "ziglang", "version"], capture_output=True).returncode == 0
    if not has_zig:
        missing("zig (PyPI package ziglang)")
    if not shutil.which("objdump"):
        missing("objdump", "apt-get install binutils")
    dist = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, SIXPENCE_DIST_DIR=str(dist), CARGO_ZIGBUILD_PYTHON_PATH=str(venv_python))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "package.sh")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, f"scripts/package.sh failed (exit {proc.returncode}):\n{proc.stderr[-5000:]}"
    zip_path = dist / "sixpence-functions.zip"
    assert zip_path.exists(), f"scripts/package.sh did not write {zip_path}"
    return zip_path


def test_zip_holds_exactly_host_json_the_binary_and_every_spec(package):
    expected = {"host.json", BINARY}
    for spec_dir in sorted((ROOT / "function-specs").iterdir()):
        if spec_dir.is_dir():
            expected |= {f"{spec_dir.name}/{p.relative_to(spec_dir).as_posix()}" for p in spec_dir.rglob("*") if p.is_file()}
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        for name in function_specs():
            assert f"{name}/function.json" in names, f"function {name} is missing from the package"
            assert json.loads(z.read(f"{name}/function.json")) == function_specs()[name]
    assert names == expected, f"unexpected: {sorted(names - expected)}; missing: {sorted(expected - names)}"


def dev_crate_names() -> set[str]:
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]
    names = set()
    for member in workspace.get("members", []):
        crate_dirs = ROOT.glob(member) if any(c in member for c in "*?[") else [ROOT / member]
        for crate_dir in crate_dirs:
            if not crate_dir.relative_to(ROOT).as_posix().startswith("dev/"):
                continue
            manifest = tomllib.loads((crate_dir / "Cargo.toml").read_text())
            names.add(manifest["package"]["name"])
            names |= {b["name"] for b in manifest.get("bin", [])}
    return names


def test_nothing_from_the_development_crates(package):
    dev = dev_crate_names()
    assert dev, "found no workspace member under dev/ (expected the local host at least)"
    with zipfile.ZipFile(package) as z:
        for name in z.namelist():
            parts = set(Path(name).parts)
            assert not parts & dev, f"{name} comes from a development crate"
        binary = z.read(BINARY)
    for crate in dev:
        assert crate.replace("-", "_").encode() not in binary, f"the binary links the development crate {crate}"


def test_binary_is_an_executable_x86_64_elf(package):
    with zipfile.ZipFile(package) as z:
        info = z.getinfo(BINARY)
        head = z.read(BINARY)[:20]
        for other in z.infolist():
            assert other.create_system == 3, f"{other.filename}: not recorded as made by Unix"
    mode = info.external_attr >> 16
    assert stat.S_ISREG(mode), "binary entry is not a regular file"
    assert stat.S_IMODE(mode) == 0o755, f"binary mode is {oct(stat.S_IMODE(mode))}, expected 0o755"
    assert head[:4] == b"\x7fELF" and head[4] == 2, "binary is not a 64-bit ELF"
    assert int.from_bytes(head[18:20], "little") == 0x3E, "binary is not x86-64"


def test_host_json_points_at_the_binary(package):
    with zipfile.ZipFile(package) as z:
        host = json.loads(z.read("host.json"))
        assert host["customHandler"]["description"]["defaultExecutablePath"] == BINARY
        assert BINARY in z.namelist()


def test_glibc_floor(package, tmp_path):
    with zipfile.ZipFile(package) as z:
        z.extract(BINARY, tmp_path)
    out = subprocess.run(["objdump", "-T", str(tmp_path / BINARY)], capture_output=True, text=True, check=True).stdout
    needed = max((version(v) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out)), default=(0,))
    assert needed <= FLEX_GLIBC, f"the binary needs GLIBC_{'.'.join(map(str, needed))}, newer than the Flex image's {FLEX_GLIBC}"
    floor = re.search(r'^GLIBC_FLOOR="([\d.]+)"', (ROOT / "scripts" / "package.sh").read_text(), re.M)
    assert floor and version(floor.group(1)) <= FLEX_GLIBC, "scripts/package.sh GLIBC_FLOOR is above the Flex image's glibc"
