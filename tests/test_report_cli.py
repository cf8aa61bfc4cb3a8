"""The report as schedulers and people ask for it: `usage-elt report`, `make report`, and a
nightly that publishes the page after a successful run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import config

ROOT = Path(__file__).resolve().parent.parent


def run(args, env, cwd=ROOT):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION"))}
    done = run([sys.executable, "-m", "pipelines", "demo"], {**env, "DEMO_DIR": str(directory)})
    assert done.returncode == 0, done.stdout + done.stderr
    return directory / "warehouse.duckdb", env


def test_usage_elt_report_and_make_report_write_the_page(demo, tmp_path):
    warehouse, env = demo
    env = {**env, "DESTINATION__DUCKDB__CREDENTIALS": str(warehouse)}
    out = tmp_path / "cli.html"
    done = run([str(ROOT / ".venv" / "bin" / "usage-elt"), "report", "--out", str(out)], env)
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert out.stat().st_size > 10_000 and "<html" in out.read_text()[:500].lower()
    made = tmp_path / "make.html"
    done = run(["make", "-s", "report", f"OUT={made}", "DAYS=7"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert made.exists() and made.stat().st_size > 10_000


@pytest.mark.parametrize("how", ["option", "config"])
def test_a_successful_nightly_publishes_the_report(how, tmp_path):
    from tests.providers import case

    sim = case("adverity").make_simulator(api_key="report-key", seed=5).start()
    try:
        out = tmp_path / "nightly.html"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION"))}
        env.update(case("adverity").env(sim))
        env.update({"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "w.duckdb"), "DLT_DATA_DIR": str(tmp_path / "dlt")})
        args = [sys.executable, "-m", "pipelines", "nightly", "--providers", "adverity"]
        if how == "option":
            args += ["--report", str(out)]
        else:
            env["REPORT__AFTER_NIGHTLY"] = "true"
        done = run(args, env, cwd=tmp_path if how == "config" else ROOT)
        assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
        written = out if how == "option" else tmp_path / "data" / "report" / "usage.html"
        assert written.exists() and f"report: {written.relative_to(tmp_path) if how == 'config' else written}" in done.stdout
        # nothing is priced without a rate card: check says so, and passes
        done = run([sys.executable, "-m", "pipelines", "check"], env, cwd=tmp_path if how == "config" else ROOT)
        assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
        assert any(line.startswith("CHECK WARNING") and "unpriced" in line for line in done.stdout.splitlines()), done.stdout
    finally:
        sim.stop()
