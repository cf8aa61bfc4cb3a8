"""A setting resolves the same from the environment, `.dlt/config.toml` or `.dlt/secrets.toml`,
for a provider's one account and for an account of several, exactly as dlt resolves it: the
pre-flight check and the source agree, and a secret put where dlt never reads secrets is
refused before anything runs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from pipelines import config
from tests.conftest import assert_facts_equal, query, yesterday
from tests.providers import case, truth_rows

ROOT = Path(__file__).resolve().parent.parent
START = yesterday() - dt.timedelta(days=2)


def toml(settings: Dict[str, str], section: str) -> str:
    return f"[{section}]\n" + "".join(f'{key} = "{value}"\n' for key, value in settings.items())


def run_from(project: Path, settings: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The command run from a project folder of its own (its `.dlt/`), with `settings` as the
    only provider settings in the environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOURCES__")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(settings)
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def neon(api_key):
    sim = case("neon").make_simulator(api_key=api_key, seed=4).start()
    yield sim
    sim.stop()


@pytest.mark.parametrize("account", [None, "eu"])
@pytest.mark.parametrize("where", ["env", "config.toml", "secrets.toml"])
def test_a_setting_resolves_the_same_from_env_config_or_secrets(where, account, neon, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    settings = {"org_id": neon.org_id, "base_url": neon.base_url + neon.base_path, "start_date": START.isoformat()}
    secret = {"api_key": neon.api_key}
    section = "sources.neon" if account is None else f"sources.neon.{account}"
    env: Dict[str, str] = {}
    if account is not None:
        env["SOURCES__NEON__ACCOUNTS"] = account
    label = "neon" if account is None else f"neon.{account}"
    if where == "env":
        env.update({config.env_name(label, key): value for key, value in {**settings, **secret}.items()})
    elif where == "config.toml":  # values in config.toml, the key in secrets.toml as dlt requires
        (project / ".dlt" / "config.toml").write_text(toml(settings, section))
        (project / ".dlt" / "secrets.toml").write_text(toml(secret, section))
    else:
        (project / ".dlt" / "secrets.toml").write_text(toml({**settings, **secret}, section))
    done = run_from(project, env, "nightly", "--providers", "neon")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert f"{label:<10} ok" in done.stdout
    rows = query("duckdb", "select usage_date, account_id, resource_type, resource_id, metric, quantity "
                           "from analytics.fct_daily_usage where provider = 'neon'")
    assert_facts_equal({tuple(r[:5]): float(r[5]) for r in rows}, truth_rows(neon, START, yesterday()))


def test_a_key_in_config_toml_is_refused_as_dlt_would(neon, tmp_path):
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "config.toml").write_text(toml(
        {"api_key": neon.api_key, "org_id": neon.org_id, "base_url": neon.base_url + neon.base_path}, "sources.neon"))
    done = run_from(project, {}, "nightly", "--providers", "neon")
    assert done.returncode == config.EXIT_CONFIG, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: neon: SOURCES__NEON__API_KEY is missing or empty; set it or leave neon out of --providers"
    )
