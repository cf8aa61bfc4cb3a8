"""analytics.focus against the FinOps Foundation's focus-validator (FOCUS 1.2, offline), on DuckDB
and on Postgres: every rule holds, and the FOCUS BilledCost adds up to fct_daily_cost's cost.

The validator needs Python 3.12 and numpy 2 (over its own pin): the test makes a venv for it once
under FOCUS_VALIDATOR_VENV (default /tmp/focus-validator-2.2.1) and reuses it; without python3.12
or a reachable package index the test is skipped, unless REQUIRE_FOCUS_VALIDATOR=1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines import pricing
from tests.test_pricing import build, card_for, dest, loaded, query, warehouse, write  # noqa: F401 - fixtures

VALIDATOR = "focus-validator==2.2.1"
VENV = Path(os.environ.get("FOCUS_VALIDATOR_VENV", "/tmp/focus-validator-2.2.1"))
CRITERIA = ("USAGE_MEASUREMENT_SUPPORTED,SUB_ACCOUNT_SUPPORTED,TAGGING_SUPPORTED,ACCOUNT_NAMING_SUPPORTED,"
            "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED,RESOURCE_TYPE_ASSIGNMENT_SUPPORTED,"
            "NEGOTIATED_PRICING_SUPPORTED")
"""What the dataset supports: usage quantities, sub accounts, tags, account names, resources and
their types, contracted (rate card) prices."""


def _skip(reason: str):
    if os.environ.get("REQUIRE_FOCUS_VALIDATOR") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def validator() -> Path:
    """The venv's site-packages folder (the validator opens its rule files by relative path)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".ready"
    if not marker.exists():
        base = shutil.which("python3.12")
        if base is None:
            _skip("python3.12 is not installed")
        shutil.rmtree(VENV, ignore_errors=True)
        steps = [[base, "-m", "venv", str(VENV)],
                 [str(python), "-m", "pip", "install", "-q", VALIDATOR],
                 [str(python), "-m", "pip", "install", "-q", "numpy>=2"]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "PYENV_VERSION": "3.12.1"})
            if done.returncode != 0:
                _skip(f"cannot install {VALIDATOR}: {done.stderr.strip()[-300:]}")
        marker.write_text(VALIDATOR)
    found = subprocess.run([str(python), "-c", "import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))"],
                           capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


def broken_rules(output: str, site: Path) -> list:
    """The failing rules that are not one alternative of an OR rule that passed."""
    status = dict(re.findall(r"^\S+ ([A-Za-z]+-[A-Z]-\d{3}-[A-Z]): (PASS|FAIL|SKIPPED)", output, flags=re.M))
    model = json.loads(next((site / "focus_validator" / "rules").glob("model-1.2*.json")).read_text())["ModelRules"]
    alternatives = {}
    for rule_id, rule in model.items():
        requirement = rule.get("ValidationCriteria", {}).get("Requirement", {})
        if requirement.get("CheckFunction") == "OR":
            for item in requirement.get("Items", []):
                if item.get("ModelRuleId"):
                    alternatives.setdefault(item["ModelRuleId"], []).append(rule_id)
    return sorted(rule for rule, state in status.items() if state == "FAIL"
                  and not any(status.get(parent) == "PASS" for parent in alternatives.get(rule, [])))


def test_focus_passes_the_validator_and_bills_the_cost(warehouse, monkeypatch, tmp_path):
    site = validator()
    path, _ = card_for(warehouse.truth(), tmp_path)
    monkeypatch.setenv("PRICING__RATE_CARD", str(path))
    monkeypatch.setenv("PRICING__FX_RATES", str(write(tmp_path / "fx.csv", ["date,currency,rate", "2026-02,EUR,1.08",
                                                                           "2026-03,EUR,1.09"])))
    monkeypatch.setenv("PRICING__OWNERS", str(write(tmp_path / "owners.csv", [
        "provider,account_id,resource_type,resource_id,team", "rafay,*,*,*,platform", 'neon,*,*,*,"data ""core"""'])))
    build()
    exported = tmp_path / "focus.csv"
    charges = pricing.export_focus(dest(), exported)
    (priced, cost), = query("select count(*), sum(cost) from analytics.fct_daily_cost where cost is not null")
    (billed, effective, contracted), = query("select sum(BilledCost), sum(EffectiveCost), sum(ContractedCost) "
                                             "from analytics.focus")
    assert charges == priced > 0
    assert float(billed) == float(effective) == float(contracted) == pytest.approx(float(cost), rel=1e-12)
    done = subprocess.run([str(VENV / "bin" / "focus-validator"), "--data-file", str(exported), "--validate-version", "1.2",
                           "--block-download", "--applicability-criteria", CRITERIA, "--show-violations"],
                          cwd=site, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert "Total:" in output, output[-2000:]
    assert not broken_rules(output, site), "\n".join(line for line in output.splitlines() if "FAIL" in line or "  " in line)[-4000:]
