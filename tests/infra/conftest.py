"""Shared helpers for the infrastructure tests (tests/infra): paths, the two Bicep parsers, and the
sources of truth the Bicep is checked against (local.settings.example.json, function-specs/,
handlers/storage/names.rs). A missing tool fails the test that needs it with the install command;
nothing is ever skipped."""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BICEP_DIR = ROOT / "infra" / "bicep"
MAIN_BICEP = BICEP_DIR / "main.bicep"
INSTALL_HINT = "python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt"


def missing(tool: str, hint: str = INSTALL_HINT) -> None:
    pytest.fail(f"{tool} is not installed; install it with: {hint}", pytrace=False)


def bicep_files() -> list[Path]:
    files = sorted(BICEP_DIR.rglob("*.bicep"))
    assert files, f"no .bicep files under {BICEP_DIR}"
    return files


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- pycep (the parser checkov scans Bicep with) -----------------------------------------------


@pytest.fixture(scope="session")
def pycep_parse():
    try:
        from pycep import BicepParser
    except ImportError:
        missing("pycep-parser")
    parser = BicepParser()
    cache: dict[Path, dict] = {}

    def parse(path: Path) -> dict:
        if path not in cache:
            cache[path] = parser.parse(text=path.read_text())
        return cache[path]

    return parse


# --- tree-sitter-bicep (a second, independent grammar; keeps identifiers apart from strings) ------


@pytest.fixture(scope="session")
def ts_parse():
    try:
        import tree_sitter
        import tree_sitter_bicep
    except ImportError:
        missing("tree-sitter / tree-sitter-bicep")
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    return lambda path: parser.parse(path.read_bytes())


def ts_errors(node) -> list[str]:
    """Positions of ERROR or MISSING nodes under node."""
    out = []
    if node.type == "ERROR" or node.is_missing:
        out.append(f"line {node.start_point[0] + 1}, column {node.start_point[1] + 1}: {node.type}")
    for child in node.children:
        out += ts_errors(child)
    return out


def ts_text(node) -> str:
    return node.text.decode()


def ts_resources(root):
    """Top-level resource declarations: (symbol, type, body object node, declaration node)."""
    for decl in root.named_children:
        if decl.type != "resource_declaration":
            continue
        symbol = ts_text(decl.named_children[0])
        rtype = ts_text(decl.named_children[1]).strip("'").split("@")[0]
        body = decl.named_children[-1]
        while body.type in ("if_statement", "for_statement"):
            body = body.named_children[-1]
        yield symbol, rtype, body, decl


def ts_property(obj, name: str):
    """The value node of property `name` in an object node, or None."""
    if obj is None or obj.type != "object":
        return None
    for prop in obj.named_children:
        if prop.type == "object_property" and ts_text(prop.named_children[0]).strip("'") == name:
            return prop.named_children[-1]
    return None


# --- sources of truth ---------------------------------------------------------------------------


@lru_cache
def local_settings() -> dict[str, str]:
    path = ROOT / "local.settings.example.json"
    assert path.exists(), (
        "local.settings.example.json is missing at the repo root: it is the source of truth for the app "
        "settings the binary reads (its Values), which infra/bicep/main.bicep must match"
    )
    return json.loads(path.read_text())["Values"]


def function_specs() -> dict[str, dict]:
    specs = {p.parent.name: json.loads(p.read_text()) for p in sorted((ROOT / "function-specs").glob("*/function.json"))}
    assert specs, "function-specs/ holds no function.json"
    return specs


def resolve_app_setting(value: str) -> str:
    """function.json values may be %APP_SETTING% expressions; resolve them from the local settings."""
    m = re.fullmatch(r"%([^%]+)%", value)
    if not m:
        return value
    settings = local_settings()
    assert m.group(1) in settings, f"{value} names an app setting missing from local.settings.example.json"
    return settings[m.group(1)]


def spec_queues() -> dict[str, str]:
    """Queue name -> function that triggers on it or writes to it."""
    queues = {}
    for fn, spec in function_specs().items():
        for b in spec.get("bindings", []):
            if b.get("type") in ("queueTrigger", "queue"):
                queues[resolve_app_setting(b["queueName"])] = fn
    return queues


NAMES_RS = ROOT / "handlers" / "storage" / "names.rs"
_CONST = re.compile(r'(?:pub(?:\([^)]*\))?\s+)?const\s+(\w+)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]*)"\s*;')


def _rust_consts(path: Path) -> dict[str, str]:
    return dict(_CONST.findall(path.read_text())) if path.exists() else {}


def _resolve_rust_item(item: str, here: Path) -> str:
    item = item.strip()
    if item.startswith('"'):
        return item.strip('"')
    parts = item.split("::")
    if len(parts) == 1:
        consts = _rust_consts(here)
        assert item in consts, f"{rel(here)}: cannot resolve {item} to a string constant"
        return consts[item]
    assert parts[0] == "crate", f"{rel(here)}: cannot resolve {item} (only crate:: paths are followed)"
    module = ROOT / "handlers" / Path(*parts[1:-1])
    for candidate in (module.with_suffix(".rs"), module / "mod.rs"):
        consts = _rust_consts(candidate)
        if parts[-1] in consts:
            return consts[parts[-1]]
    raise AssertionError(f"{rel(here)}: cannot resolve {item} to a string constant in {rel(module)}.rs or mod.rs")


def names_rs_list(list_name: str) -> list[str] | None:
    """The strings in `pub const <list_name>: &[&str] = &[...]` in handlers/storage/names.rs, with
    constants (local or crate:: paths) resolved; None while names.rs does not define the list yet."""
    if not NAMES_RS.exists():
        return None
    src = NAMES_RS.read_text()
    m = re.search(rf"const\s+{list_name}\s*:\s*&(?:'static\s+)?\[&(?:'static\s+)?str\]\s*=\s*&\[(.*?)\]\s*;", src, re.S)
    if not m:
        return None
    body = re.sub(r"//[^\n]*", "", m.group(1))
    return [_resolve_rust_item(item, NAMES_RS) for item in body.split(",") if item.strip()]


def venv_tool(name: str) -> Path:
    return Path(sys.executable).parent / name
