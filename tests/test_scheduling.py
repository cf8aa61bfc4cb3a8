"""What schedulers run: the console script's exit codes, and the README's cron line, run the way
cron runs it (`sh -c`, from a fresh clone, with no `data/` folder yet)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import config
from tests.conftest import query, yesterday
from tests.test_faults import FAST_RETRIES

ROOT = Path(__file__).resolve().parent.parent
USAGE_ELT = Path(sys.executable).with_name("usage-elt")


def readme_cron_line() -> str:
    """The command of the README's crontab line (after the five time fields)."""
    block = re.search(r"```cron\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    entry = next(line for line in block.splitlines() if re.match(r"^[0-9*]", line))
    return entry.split(None, 5)[5].replace("\\%", "%")  # cron's escaped % is a plain % to the shell


@pytest.fixture
def fresh_clone(tmp_path) -> Path:
    """A clone of the committed project, with the environment `make` would create."""
    clone = tmp_path / "usage-elt"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return clone


@pytest.fixture
def sims_env(monkeypatch, api_key):
    from tests.providers import case

    started = []
    for provider in ("neon", "bronto"):
        sim = case(provider).make_simulator(api_key=f"{api_key}-{provider}", seed=2).start()
        started.append(sim)
        for name, value in sim.source_env().items():
            monkeypatch.setenv(name, value)
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    yield started
    for sim in started:
        sim.stop()


def test_the_console_script_is_installed():
    assert USAGE_ELT.exists(), "make installs the usage-elt console script into .venv"
    done = subprocess.run([str(USAGE_ELT), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("usage: usage-elt")


def test_usage_elt_exit_codes_tell_the_scheduler_what_happened(sims_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(USAGE_ELT), *args], capture_output=True, text=True, env=dict(os.environ), timeout=300)

    assert run("nightly").returncode == config.EXIT_OK
    neon, _ = sims_env
    neon.stop()  # a provider down
    down = run("nightly")
    assert down.returncode == config.EXIT_FAILED and "FAILED neon: cannot reach" in down.stdout
    neon.start()
    bad = dict(os.environ, SOURCES__BRONTO__START_DATE="yesterday")
    config_error = subprocess.run([str(USAGE_ELT), "nightly"], capture_output=True, text=True, env=bad)
    assert config_error.returncode == config.EXIT_CONFIG and "SOURCES__BRONTO__START_DATE" in config_error.stderr
    from pipelines.lock import warehouse_lock

    with warehouse_lock(config.destination("duckdb"), "backfill", 0):  # another run holds the warehouse
        busy = run("nightly")
    assert busy.returncode == config.EXIT_LOCKED, busy.stdout + busy.stderr
    assert "--wait" in busy.stderr


def test_the_readme_cron_line_runs_from_a_fresh_clone(fresh_clone, sims_env, monkeypatch):
    command = readme_cron_line().replace("cd /opt/usage-elt", f"cd {fresh_clone}")
    assert not (fresh_clone / "data").exists()
    neon, _ = sims_env
    neon.stop()  # the night one provider is down
    env = {name: value for name, value in os.environ.items() if name != "DESTINATION__DUCKDB__CREDENTIALS"}
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr == "", "everything goes to the log"
    (log,) = list((fresh_clone / "data" / "logs").glob("nightly-*.log"))
    text = log.read_text()
    assert "FAILED neon: cannot reach" in text and "bronto     ok" in text
    assert (fresh_clone / "data" / "warehouse.duckdb").exists()
    shutil.rmtree(fresh_clone / "data")


# -- make, for people ----------------------------------------------------------------------------------
def make(*args: str) -> subprocess.CompletedProcess:
    """`make` in the project, with this environment's Python and the environment taken as made;
    nothing of an outer make (`make test PROVIDERS=...` hands its variables down) or of the shell
    sets a variable here."""
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PROVIDER", "PROVIDERS", "WAIT", "START", "END")
    env = {name: value for name, value in os.environ.items() if name not in outer}
    return subprocess.run(["make", "-s", "-o", ".venv/.installed", f"PY={sys.executable}", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


def command_of(done: subprocess.CompletedProcess) -> list:
    import shlex

    (line,) = [line for line in done.stdout.splitlines() if " -m pipelines " in line]
    return shlex.split(line)


@pytest.mark.parametrize("variable", ["PROVIDER", "PROVIDERS"])
@pytest.mark.parametrize("target", ["nightly", "backfill", "models", "check", "status"])
def test_every_make_target_takes_provider_and_providers(target, variable):
    done = make("-n", target, f"{variable}=neon.eu,bronto", "START=2026-01-01", "END=2026-01-02")
    assert done.returncode == 0, done.stderr
    argv = command_of(done)
    flags = [i for i, arg in enumerate(argv) if arg in ("--provider", "--providers")]
    assert [argv[i + 1] for i in flags] == ["neon.eu,bronto"], argv
    everything = command_of(make("-n", target, "START=2026-01-01", "END=2026-01-02"))
    assert not {"--provider", "--providers"} & set(everything), "without either, every configured provider"


def test_make_refuses_provider_and_providers_that_disagree():
    done = make("-n", "nightly", "PROVIDER=neon", "PROVIDERS=bronto")
    assert done.returncode == 2 and "PROVIDER=neon and PROVIDERS=bronto disagree" in done.stderr


def test_make_backfill_providers_backfills_only_those(sims_env):
    day = (yesterday() - dt.timedelta(days=1)).isoformat()
    done = make("backfill", "PROVIDERS=bronto", f"START={day}", f"END={day}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert query("duckdb", "select distinct command, provider from analytics.load_runs") == [("backfill", "bronto")]


def test_hints_say_wait_as_make_does_and_as_the_command_line_does(sims_env):
    from pipelines.lock import warehouse_lock

    with warehouse_lock(config.destination("duckdb"), "backfill", 0):  # another run holds the warehouse
        under_make = make("nightly")
        direct = subprocess.run([sys.executable, "-m", "pipelines", "nightly"], cwd=ROOT, capture_output=True,
                                text=True, env=dict(os.environ), timeout=120)
    assert under_make.returncode == 2, "make turns every failure into 2"
    (line,) = [line for line in under_make.stderr.splitlines() if line.startswith("error:")]
    assert line.endswith("wait for it to finish or run it again with WAIT=SECONDS") and "--wait" not in line, line
    assert direct.returncode == config.EXIT_LOCKED
    (line,) = [line for line in direct.stderr.splitlines() if line.startswith("error:")]
    assert line.endswith("wait for it to finish or run it again with --wait SECONDS") and "WAIT=" not in line, line
