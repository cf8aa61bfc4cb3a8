"""Alerts (pipelines/alerts.py) against a real webhook on loopback and real runs of the command
against the simulators: a provider down is one POST naming provider, account and error, and the
run's exit code is its own; a healthy night posts nothing, or one message with
ALERTS__ON_SUCCESS=true; a webhook that is down, slow or answering 500 costs the run a few
seconds and one warning line; no configured key ever reaches the body."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Sequence

import pytest

from pipelines import alerts, config
from simulators.base import FOREVER, Fault, Simulator
from sources import windows
from tests.providers import case
from tests.test_faults import FAST_RETRIES, SMALL

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 3, 21)
PINNED_TIME = dt.timedelta(hours=6, minutes=17, seconds=3)
HISTORY_DAYS = 6
"""Days before the first night's yesterday that it loads: too few for any usage anomaly (7 prior days)."""


# -- a webhook on loopback ----------------------------------------------------------------------
class Receiver:
    """A Slack-like webhook: records every POST body; `mode` ok (200), fail (500) or slow
    (holds each request `hold_s` before answering)."""

    def __init__(self):
        self.mode = "ok"
        self.hold_s = 60.0
        self.bodies: List[bytes] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.bodies.append(body)
                if receiver.mode == "slow":
                    receiver.release.wait(receiver.hold_s)
                status = 500 if receiver.mode == "fail" else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"internal error")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/hooksecret"

    def texts(self) -> List[str]:
        return [json.loads(body)["text"] for body in self.bodies]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch):
    """The webhook, set as ALERTS__WEBHOOK_URL."""
    hook = Receiver()
    monkeypatch.setenv("ALERTS__WEBHOOK_URL", hook.url)
    yield hook
    hook.close()


@pytest.fixture(autouse=True)
def no_alert_or_pricing_settings(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("ALERTS__", "PRICING__")):
            monkeypatch.delenv(name)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# -- runs ---------------------------------------------------------------------------------------
def night(monkeypatch, day: dt.date) -> None:
    """Make `day` today, for the simulators and the commands."""
    monkeypatch.setenv("USAGE_NOW", (windows.midnight(day) + PINNED_TIME).isoformat())


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


@pytest.fixture
def sims(monkeypatch, api_key):
    """start(providers, first_day, make=None): simulators on the test's clock (`make(provider,
    **kwargs)` builds one instead of the provider case's), sources pointed at them, fast retries."""
    started: Dict[str, Simulator] = {}
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)

    def start(providers: Sequence[str], first_day: dt.date, make=None) -> Dict[str, Simulator]:
        for provider in providers:
            provider_case = case(provider)
            options = dict(api_key=f"{api_key}-{provider}", seed=7, clock=windows.utc_now, **SMALL.get(provider, {}))
            sim = (make(provider, **options) if make else provider_case.make_simulator(**options)).start()
            started[provider] = sim
            for name, value in provider_case.env(sim).items():
                if name != "USAGE_NOW":
                    monkeypatch.setenv(name, value)
            monkeypatch.setenv(config.env_name(provider, "start_date"), first_day.isoformat())
        return started

    yield start
    for sim in started.values():
        sim.stop()


def configured_secrets() -> List[str]:
    """Every key and password the runs were given."""
    found = [value for name, value in os.environ.items() if name.endswith("__API_KEY") and value]
    url = os.environ.get("DESTINATION__POSTGRES__CREDENTIALS")
    if url:
        from urllib.parse import urlsplit

        found.append(f":{urlsplit(url).password}@")
    return found


def assert_no_secret(receiver: Receiver) -> None:
    secrets = configured_secrets()
    assert secrets
    for body in receiver.bodies:
        text = body.decode()
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"the alert holds a configured secret: {text}"


def warnings(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if "alert not sent" in line]


# -- tests --------------------------------------------------------------------------------------
def test_a_provider_down_is_one_post_naming_it_and_a_healthy_night_posts_nothing(monkeypatch, sims, receiver,
                                                                                 destination):
    monkeypatch.setenv("DESTINATION", destination)
    first_night = TODAY - dt.timedelta(days=1)
    night(monkeypatch, first_night)
    started = sims(["neon", "rafay"], first_night - dt.timedelta(days=1 + HISTORY_DAYS))
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert receiver.bodies == [], "a healthy night with nothing to say posts nothing"

    night(monkeypatch, TODAY)
    key = started["rafay"].api_key
    started["rafay"].inject(Fault(status=503, body={"error": f"maintenance; your key {key} is fine"}, times=FOREVER))
    done = run("nightly")
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert len(receiver.bodies) == 1, receiver.texts()
    (text,) = receiver.texts()
    failed = [line for line in text.splitlines() if line.startswith("- failed:")]
    assert failed and failed[0].startswith("- failed: rafay (account default): rafay: HTTP 503: maintenance"), text
    assert "neon (account" not in "\n".join(failed), "only the failed provider is named as failed"
    assert text.startswith("usage-elt nightly FAILED (exit 1)"), text
    yesterday = TODAY - dt.timedelta(days=1)
    assert f"- missing days: rafay (account default): {yesterday}" in text, text
    assert_no_secret(receiver)
    assert not warnings(done.stderr), done.stderr


def test_on_success_a_healthy_night_posts_once(monkeypatch, sims, receiver):
    monkeypatch.setenv("ALERTS__ON_SUCCESS", "true")
    night(monkeypatch, TODAY)
    sims(["neon"], TODAY - dt.timedelta(days=1 + HISTORY_DAYS))
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert len(receiver.bodies) == 1, receiver.texts()
    (text,) = receiver.texts()
    assert text.startswith("usage-elt nightly ok (exit 0) on duckdb"), text
    assert text.splitlines()[0].endswith(": neon"), text
    assert_no_secret(receiver)


def test_a_backfill_with_a_provider_down_posts_once(monkeypatch, sims, receiver):
    night(monkeypatch, TODAY)
    first = TODAY - dt.timedelta(days=4)
    started = sims(["neon"], first)
    started["neon"].inject(Fault(status=503, body={"message": "service unavailable"}, times=FOREVER))
    done = run("backfill", "--provider", "neon", "--start", str(first), "--end", str(TODAY - dt.timedelta(days=1)))
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert len(receiver.bodies) == 1, receiver.texts()
    (text,) = receiver.texts()
    assert text.startswith("usage-elt backfill FAILED (exit 1)"), text
    assert "- failed: neon (account default): neon: HTTP 503: service unavailable" in text, text
    assert_no_secret(receiver)


def test_a_webhook_down_slow_or_failing_leaves_the_run_its_exit_code(monkeypatch, sims, receiver):
    monkeypatch.setenv("ALERTS__ON_SUCCESS", "true")
    first_night = TODAY - dt.timedelta(days=2)
    night(monkeypatch, first_night)
    started = sims(["neon"], first_night - dt.timedelta(days=1 + HISTORY_DAYS))

    receiver.mode = "fail"  # answers 500: retried, then one warning
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert len(receiver.bodies) == alerts.ATTEMPTS
    assert len(warnings(done.stderr)) == 1 and "HTTP 500" in done.stderr, done.stderr
    assert "hooksecret" not in done.stderr, "the log names the webhook's host only"

    night(monkeypatch, first_night + dt.timedelta(days=1))
    receiver.mode, receiver.bodies = "slow", []  # holds every request a minute
    started["neon"].inject(Fault(status=503, body={"message": "down"}, times=FOREVER))
    began = time.monotonic()
    done = run("nightly")
    took = time.monotonic() - began
    assert done.returncode == config.EXIT_FAILED, done.stdout + done.stderr
    assert len(warnings(done.stderr)) == 1, done.stderr
    assert took < receiver.hold_s, f"the run waited for the webhook: {took:.0f} s"
    receiver.release.set()

    night(monkeypatch, TODAY)
    started["neon"].clear_faults()
    monkeypatch.setenv("ALERTS__WEBHOOK_URL", closed_port_url())  # nothing listens
    done = run("nightly")
    assert done.returncode == config.EXIT_OK, done.stdout + done.stderr
    assert len(warnings(done.stderr)) == 1, done.stderr


@pytest.mark.parametrize("mode", ["slow", "fail", "down"])
def test_sending_gives_up_within_its_deadline(receiver, mode):
    receiver.mode = mode
    url = closed_port_url() if mode == "down" else receiver.url
    began = time.monotonic()
    assert alerts.post(url, "hello") is False
    assert time.monotonic() - began < alerts.DEADLINE_S + 1.0
    receiver.mode = "ok"
    assert alerts.post(receiver.url, "hello") is True
    assert receiver.texts()[-1] == "hello"


def test_the_text_is_redacted_before_it_is_sent(monkeypatch, receiver):
    from sources.secrets import register_secret

    register_secret("sk-live-0123456789abcdef")

    class Report:
        command, accounts, results, model_errors, problems = "nightly", ["neon"], [], [], []
        failed = [type("R", (), {"provider": "neon", "error": "HTTP 401: key sk-live-0123456789abcdef rejected"})()]
        exit_code = config.EXIT_FAILED
        destination = config.Destination("duckdb", os.environ["DESTINATION__DUCKDB__CREDENTIALS"])

    alerts.after_run(Report())
    (text,) = receiver.texts()
    assert "sk-live-0123456789abcdef" not in text and "key *** rejected" in text, text
