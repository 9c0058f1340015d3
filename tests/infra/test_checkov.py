"""Runs checkov over infra/ with the Bicep framework, offline (--skip-download), and requires no failed
check and no parsing error. A check may be skipped only with a written reason, as a
`// checkov:skip=CKV_...:reason` comment inside the resource; a skip without a reason fails here."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import ROOT, missing, venv_tool


@pytest.fixture(scope="module")
def report():
    checkov = venv_tool("checkov")
    if not checkov.exists():
        missing("checkov")
    proc = subprocess.run(
        [str(checkov), "-d", "infra", "--framework", "bicep", "--skip-download", "--compact", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)


def test_checkov_reports_no_failed_checks(report):
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, f"checkov could not parse some files: {summary}"
    assert summary["resource_count"] > 0, "checkov scanned no resource"
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)


def test_every_skip_has_a_reason(report):
    bare = []
    for c in report["results"]["skipped_checks"]:
        reason = (c.get("check_result") or {}).get("suppress_comment") or ""
        if reason == "No comment provided" or len(reason.strip()) < 20:
            bare.append(f"{c['check_id']} on {c['resource']} ({c['file_path']})")
    assert not bare, "checkov skips without a written reason:\n" + "\n".join(bare)
