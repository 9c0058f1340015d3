#!/usr/bin/env python3
"""Prints the README's settings table from handlers/config.rs (SETTINGS), so the two cannot drift.

Usage: scripts/settings_table.py [--write]   (--write replaces the table in README.md in place)
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "handlers/config.rs").read_text()
consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "([^"]+)";', src))
entry = re.compile(
    r'setting\(\s*([A-Z_]+|"[^"]+"),\s*Scope::(\w+),\s*(true|false),\s*("[^"]*"|[A-Z_]+),\s*"((?:[^"\\]|\\.)*)",?\s*\)'
)
where = {"App": "app setting", "AzureOnly": "Azure only", "HostProvided": "set by the host", "HostOnly": "read by the host"}
rows = []
for name, scope, secret, local, purpose in entry.findall(src):
    name = consts.get(name, name.strip('"'))
    local = consts.get(local, local.strip('"'))
    local = f"`{local}`" if local else ""
    rows.append(f"| `{name}` | {where[scope]} | {'yes' if secret == 'true' else ''} | {local} | {purpose} |")
table = "| setting | scope | secret | local value | purpose |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"

if "--write" in sys.argv:
    readme = root / "README.md"
    text = readme.read_text()
    new = re.sub(r"\| setting \| scope \| secret \| local value \| purpose \|\n\|---\|---\|---\|---\|---\|\n(?:\|.*\|\n)*", table, text)
    readme.write_text(new)
else:
    sys.stdout.write(table)
