"""Fault injection, provider by provider: the simulators misbehave over real HTTP and the
warehouse must end equal to their ground truth.

Survived (the load ends ok): 429 with `Retry-After`, Bronto's 429 with only `RateLimit-Reset`,
Neon's 429 with neither, bursts of 500/502/503, dropped connections, answers slower than the
read timeout, schema drift. Reported (the load fails with one clear line and changes nothing;
a healthy rerun catches up): a required field missing, malformed bodies, 401/403.

Retries are made fast through dlt's runtime settings (`RUNTIME__REQUEST_*`): a 1 s read
timeout, 4 attempts, a 0.05 s first backoff, waits capped at 1.5 s.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable, Dict, List

import pytest

from pipelines import config
from pipelines.load import load_provider, pipeline_for
from simulators.base import FOREVER, Fault, Simulator
from sources.adverity import settings as adverity_settings
from sources.bronto import settings as bronto_settings
from sources.neon import settings as neon_settings
from sources.rafay import settings as rafay_settings
from tests.conftest import assert_facts_equal, facts, query, yesterday
from tests.providers import PROVIDER_NAMES, ProviderCase, case, truth_rows

DAYS = 2
SMALL = {
    # fewer resources than the provider suite: each load stays well under a second
    "rafay": {"n_orgs": 2, "n_compute_instances": 5, "n_service_instances": 3, "n_compute_profiles": 2, "n_service_profiles": 1},
    "adverity": {"n_workspaces": 2, "datastreams_per_workspace": 3},
}
TIMEOUT_S = 1.0
MAX_ATTEMPTS = 4
BACKOFF_S = 0.05
MAX_DELAY_S = 1.5
FAST_RETRIES = {
    "RUNTIME__REQUEST_TIMEOUT": str(TIMEOUT_S),
    "RUNTIME__REQUEST_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "RUNTIME__REQUEST_BACKOFF_FACTOR": str(BACKOFF_S),
    "RUNTIME__REQUEST_MAX_RETRY_DELAY": str(MAX_DELAY_S),
}

ENDPOINT = {
    # the endpoint a ProviderError names for the first request of a run
    "neon": neon_settings.PROJECTS_PATH,
    "adverity": adverity_settings.USAGE_PATH,
    "rafay": rafay_settings.COMPUTE_INSTANCE_PATH,
    "bronto": bronto_settings.USAGE_PATH,
}
WINDOW = re.compile(r"window (\d{4}-\d\d-\d\d)\.\.(\d{4}-\d\d-\d\d)")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def start_sim(monkeypatch, api_key):
    """start_sim(provider, **overrides): that provider's simulator, started, the source pointed at it."""
    started: List[Simulator] = []

    def start(provider: str, **overrides: Any) -> Simulator:
        sim = case(provider).make_simulator(api_key=api_key, seed=11, **{**SMALL.get(provider, {}), **overrides}).start()
        started.append(sim)
        for name, value in case(provider).env(sim).items():
            monkeypatch.setenv(name, value)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(params=PROVIDER_NAMES)
def provider_case(request) -> ProviderCase:
    return case(request.param)


@pytest.fixture
def simulator(provider_case, start_sim) -> Simulator:
    """The parametrized provider's (small) simulator, started, the source pointed at it."""
    return start_sim(provider_case.name)


# -- helpers ---------------------------------------------------------------------------------------
def run_days():
    last = yesterday()
    return last - dt.timedelta(days=DAYS - 1), last


def nightly(provider_case: ProviderCase):
    first, _ = run_days()
    return load_provider(provider_case.name, start_date=first)


def assert_equals_truth(provider_case: ProviderCase, sim: Simulator) -> None:
    first, last = run_days()
    assert_facts_equal(facts("duckdb", provider_case), truth_rows(sim, first, last), provider_case.tolerance)


def loaded(provider_case: ProviderCase) -> Dict[tuple, float]:
    """The raw facts, or nothing when the provider's tables do not exist yet."""
    dataset = f"raw_{provider_case.name}"
    tables = {name for (name,) in query("duckdb", f"select table_name from information_schema.tables where table_schema = '{dataset}'")}
    if not set(provider_case.tables) <= tables:
        return {}
    return facts("duckdb", provider_case)


def cursors(provider_case: ProviderCase) -> Dict[str, Any]:
    """The saved nightly cursor of every resource (empty before the first successful run)."""
    pipeline = pipeline_for(provider_case.name, config.destination("duckdb"))
    resources = pipeline.state.get("sources", {}).get(provider_case.name, {}).get("resources", {})
    return {name: (r.get("incremental") or {}).get("usage_date", {}).get("last_value") for name, r in resources.items()}


def retry_gaps(sim: Simulator, fault_kind: str) -> List[float]:
    """For every request answered with a fault of `fault_kind`, the seconds until the same
    request (same path and query) came again."""
    requests = list(sim.requests)
    gaps = []
    for index, request in enumerate(requests):
        if request.fault != fault_kind:
            continue
        again = next((r for r in requests[index + 1 :] if r.path == request.path and r.query == request.query), None)
        assert again is not None, f"{request.path} was never asked again after a {fault_kind} fault"
        gaps.append(again.at - request.at)
    return gaps


def one_line(error: str) -> str:
    assert error and "\n" not in error and "Traceback" not in error, error
    return error


def walk(body: Any, change: Callable[[Dict[str, Any]], Dict[str, Any]]) -> Any:
    """`body` with `change` applied to every object in it, innermost first."""
    if isinstance(body, dict):
        return change({key: walk(value, change) for key, value in body.items()})
    if isinstance(body, list):
        return [walk(value, change) for value in body]
    return body


def numbers_as_strings(body: Any) -> Any:
    if isinstance(body, bool):
        return body
    if isinstance(body, (int, float)):
        return str(body)
    if isinstance(body, dict):
        return {key: numbers_as_strings(value) for key, value in body.items()}
    if isinstance(body, list):
        return [numbers_as_strings(value) for value in body]
    return body


def with_new_fields(body: Any) -> Any:
    return walk(body, lambda obj: {**obj, "introduced_in_v2": "yes", "extra_stats": {"n": 1, "tags": ["a", "b"]}})


def without(*fields: str) -> Callable[[Any], Any]:
    return lambda body: walk(body, lambda obj: {k: v for k, v in obj.items() if k not in fields})


NOT_NEEDED = {
    # fields each source can do without: names, descriptions, timestamps it does not key on
    "neon": ("period_id", "period_plan", "period_start", "period_end", "timeframe_end"),
    "adverity": ("workspace_name", "next", "previous"),
    "rafay": ("instance_name", "instance_organization_name", "instance_project_id", "instance_project_name",
              "profile_name", "created_at", "start_time", "end_time", "usage", "partner_id", "count",
              "offset", "limit", "range_from", "range_to", "kind"),
    "bronto": ("@time", "quantiles", "is_exact", "name", "filter", "stat", "total_count", "total_value",
               "series_resolution_ms", "delta"),
}
REQUIRED = {
    # a key and the day (Rafay's day is the request window's, so two keys), without which no
    # row can be placed
    "neon": ("project_id", "timeframe_start"),
    "adverity": ("workspace_id", "date"),
    "rafay": ("instance_id", "instance_organization_id"),
    "bronto": ("id", "@timestamp", "key"),
}


# -- 429 -------------------------------------------------------------------------------------------
def test_429_with_retry_after_is_waited_out(provider_case, simulator, fault_report):
    wait_s = 1
    fault = simulator.inject(Fault(status=429, body={"message": "too many requests"}, headers={"Retry-After": str(wait_s)}))
    result = nightly(provider_case)
    assert result.status == "ok", result.error
    (gap,) = retry_gaps(simulator, "status")
    assert gap >= wait_s, f"asked again after {gap:.2f} s, Retry-After said {wait_s} s"
    assert_equals_truth(provider_case, simulator)
    fault_report("429 with Retry-After", fault.served)


def test_a_retry_after_beyond_the_cap_waits_the_cap(start_sim, fault_report):
    neon = case("neon")
    sim = start_sim("neon")
    asked_s = 30
    fault = sim.inject(Fault(status=429, headers={"Retry-After": str(asked_s)}))
    result = nightly(neon)
    assert result.status == "ok", result.error
    (gap,) = retry_gaps(sim, "status")
    assert MAX_DELAY_S <= gap < asked_s / 2, (
        f"waited {gap:.2f} s: Retry-After {asked_s} s is capped by RUNTIME__REQUEST_MAX_RETRY_DELAY={MAX_DELAY_S}"
    )
    assert_equals_truth(neon, sim)
    fault_report("429 with Retry-After beyond the cap", fault.served)


def test_bronto_429_with_only_ratelimit_reset_is_waited_out(start_sim, fault_report):
    """Bronto's 429 as its simulator answers it (see the test below): `RateLimit-Reset`, no
    `Retry-After`; the client waits the reset, not its own short backoff."""
    bronto = case("bronto")
    sim = start_sim("bronto")
    reset_s = 1
    body = {"code": 429, "type": "Too Many Requests", "correlation_id": "c-1", "details": "rate limit exceeded"}
    headers = {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset_s)}
    fault = sim.inject(Fault(status=429, body=body, headers=headers, after=1))
    result = nightly(bronto)
    assert result.status == "ok", result.error
    (gap,) = retry_gaps(sim, "status")
    assert gap >= reset_s, f"asked again after {gap:.2f} s, RateLimit-Reset said {reset_s} s"
    assert_equals_truth(bronto, sim)
    fault_report("429 with RateLimit-Reset only (Bronto)", fault.served)


def test_bronto_429_answer_carries_no_retry_after(start_sim, api_key):
    """What the test above serves is what Bronto's own bucket answers: the reset, no `Retry-After`."""
    import requests

    sim = start_sim("bronto", rate_limit=1, rate_period_s=60.0)
    answers = [
        requests.get(sim.base_url + bronto_settings.USAGE_PATH, params={"time_range": "Last 1 hour"},
                     headers={bronto_settings.API_KEY_HEADER: api_key}, timeout=5)
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 429]
    refused = answers[1]
    assert "Retry-After" not in refused.headers and int(refused.headers["RateLimit-Reset"]) >= 1
    assert {"RateLimit-Limit", "RateLimit-Remaining"} <= set(refused.headers)
    assert set(refused.json()) == {"code", "type", "correlation_id", "details"}


def test_neon_429_without_any_header_backs_off_exponentially_and_bounded(start_sim, monkeypatch, fault_report):
    neon = case("neon")
    first_wait_s = 0.1
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", str(first_wait_s))
    sim = start_sim("neon")
    body = {"request_id": "r-1", "code": "TOO_MANY_REQUESTS", "message": "too many requests"}
    burst = sim.inject(Fault(status=429, body=body, times=MAX_ATTEMPTS - 1))
    result = nightly(neon)
    assert result.status == "ok", result.error
    retried = sim.requests[:MAX_ATTEMPTS]  # the first page, answered at the last attempt; then the empty page
    gaps = [b.at - a.at for a, b in zip(retried, retried[1:])]
    assert len(gaps) == MAX_ATTEMPTS - 1
    for attempt, gap in enumerate(gaps):
        assert gap >= first_wait_s * 2**attempt, f"waits {[round(g, 2) for g in gaps]} do not double from {first_wait_s} s"
    assert_equals_truth(neon, sim)
    before = facts("duckdb", neon)

    sim.reset_log()
    endless = sim.inject(Fault(status=429, body=body, times=FOREVER))
    failed = nightly(neon)
    assert failed.status == "failed"
    assert "HTTP 429" in one_line(failed.error) and f"{MAX_ATTEMPTS} attempt(s)" in failed.error
    assert len(sim.requests) == MAX_ATTEMPTS, "a 429 that never ends is retried a bounded number of times"
    assert facts("duckdb", neon) == before
    sim.clear_faults()
    assert nightly(neon).status == "ok"
    assert_equals_truth(neon, sim)
    fault_report("429 without Retry-After (Neon)", burst.served + endless.served)


# -- 5xx, dropped connections, slow answers --------------------------------------------------------
def test_a_burst_of_500_502_503_is_retried(provider_case, simulator, fault_report):
    faults = [simulator.inject(Fault(status=status, body={"message": "upstream trouble"})) for status in (500, 502, 503)]
    result = nightly(provider_case)
    assert result.status == "ok", result.error
    assert sum(f.served for f in faults) == 3
    assert_equals_truth(provider_case, simulator)
    fault_report("HTTP 500/502/503 burst", sum(f.served for f in faults))


def test_a_dropped_connection_is_retried(provider_case, simulator, fault_report):
    fault = simulator.inject(Fault(kind="drop", times=2))
    result = nightly(provider_case)
    assert result.status == "ok", result.error
    assert len(retry_gaps(simulator, "drop")) == 2
    assert_equals_truth(provider_case, simulator)
    fault_report("dropped connection", fault.served)


def test_an_answer_slower_than_the_read_timeout_is_cut_and_retried(provider_case, simulator, fault_report):
    """The slow answer would be a good one: the request is asked again only because the client
    stopped waiting for it at the read timeout."""
    slow_s = 5 * TIMEOUT_S
    fault = simulator.inject(Fault(kind="slow", delay_s=slow_s))
    result = nightly(provider_case)
    assert result.status == "ok", result.error
    (gap,) = retry_gaps(simulator, "slow")
    assert gap < slow_s, f"asked again after {gap:.2f} s: it waited for the slow answer, not {TIMEOUT_S} s"
    assert_equals_truth(provider_case, simulator)
    fault_report("answer slower than the read timeout", fault.served)


@pytest.mark.parametrize("provider", ["neon", "rafay"])
def test_every_request_is_bounded_in_time(provider, start_sim, monkeypatch, fault_report):
    """An API that never answers in time fails the load after the configured attempts (one
    request at a time for Neon, from a pool of threads for Rafay)."""
    provider_case, simulator = case(provider), start_sim(provider)
    timeout_s, attempts = 0.5, 2
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", str(timeout_s))
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", str(attempts))
    fault = simulator.inject(Fault(kind="slow", delay_s=4 * timeout_s, times=FOREVER))
    result = nightly(provider_case)
    assert result.status == "failed"
    assert f"did not answer within {timeout_s:g} s in {attempts} attempts" in one_line(result.error)
    assert len(simulator.requests) == attempts
    assert loaded(provider_case) == {}
    simulator.clear_faults()
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    assert nightly(provider_case).status == "ok"
    assert_equals_truth(provider_case, simulator)
    fault_report("API never answering in time", fault.served)


# -- schema drift ----------------------------------------------------------------------------------
def test_schema_drift_is_loaded(provider_case, simulator, fault_report):
    """New fields everywhere, every number as a string and the fields the source does not need
    gone, all at once."""
    drop_unneeded = without(*NOT_NEEDED[provider_case.name])
    fault = simulator.inject(Fault(kind="mutate", mutate=lambda body: numbers_as_strings(with_new_fields(drop_unneeded(body))),
                                   times=FOREVER))
    result = nightly(provider_case)
    assert result.status == "ok", result.error
    assert_equals_truth(provider_case, simulator)
    fault_report("schema drift: new fields, numbers as strings, unneeded fields gone", fault.served)


def test_a_missing_required_field_names_provider_endpoint_and_field(provider_case, simulator, fault_report):
    for field in REQUIRED[provider_case.name]:
        simulator.clear_faults()
        fault = simulator.inject(Fault(kind="mutate", mutate=without(field), times=FOREVER))
        result = nightly(provider_case)
        assert result.status == "failed", field
        message = one_line(result.error)
        assert message.startswith(f"{provider_case.name}: ") and ENDPOINT[provider_case.name] in message, message
        assert re.search(rf"['.]{re.escape(field)}'", message), f"the field is not named: {message}"
        assert loaded(provider_case) == {}, "nothing is loaded from a body that cannot be read"
        fault_report("schema drift: required field missing", fault.served)
    simulator.clear_faults()
    assert nightly(provider_case).status == "ok"
    assert_equals_truth(provider_case, simulator)


# -- malformed bodies and rejected keys ------------------------------------------------------------
MALFORMED = {
    # variant: (body served with status 200, its headers, what the error says about it)
    "not JSON": (b"Service temporarily unavailable", {}, " (truncated or not JSON: "),
    "truncated JSON": (b'{"items": [{"date": "2026-0', {}, " (truncated or not JSON: "),
    "HTML page with 200": (b"<html><body><h1>Maintenance</h1></body></html>", {"Content-Type": "text/html; charset=utf-8"},
                           ": the API answered text/html instead of JSON (HTTP 200)"),
}
FAULT_AFTER = {"neon": 0, "adverity": 0, "rafay": 5, "bronto": 1}
"""Requests answered normally before the malformed one: Rafay and Bronto have already read part
of the run by then, so a half-loaded window would show."""


def test_a_malformed_body_fails_its_window_and_loads_none_of_it(provider_case, simulator, fault_report):
    assert nightly(provider_case).status == "ok"
    before, cursor = facts("duckdb", provider_case), cursors(provider_case)
    run_first, run_last = run_days()
    for variant, (body, headers, says) in MALFORMED.items():
        simulator.clear_faults()
        fault = simulator.inject(Fault(kind="raw", raw=body, headers=headers, after=FAULT_AFTER[provider_case.name]))
        result = nightly(provider_case)
        assert result.status == "failed", variant
        message = one_line(result.error)
        assert message.startswith(f"{provider_case.name}: malformed response body{says}"), message
        endpoint = re.search(r"\[(\S+) window", message).group(1)
        assert any(request.path.endswith(endpoint) for request in simulator.requests), message
        first, last = (dt.date.fromisoformat(day) for day in WINDOW.search(message).groups())
        assert run_first <= first <= last <= run_last, message
        assert facts("duckdb", provider_case) == before, f"{variant}: the failed window changed the warehouse"
        assert cursors(provider_case) == cursor, f"{variant}: the cursor moved past a window that failed"
        fault_report(f"malformed body: {variant}", fault.served)
    simulator.clear_faults()
    assert nightly(provider_case).status == "ok"
    assert_equals_truth(provider_case, simulator)


def test_rejected_credentials_fail_at_once_without_retries(provider_case, simulator, fault_report):
    """401 and 403 stop the load at the first answer, with the key setting to fix; the key is
    masked even when the vendor's message quotes it."""
    key = simulator.api_key
    for status in (401, 403):
        simulator.clear_faults()
        simulator.reset_log()
        body = {"message": f"invalid key {key}", "detail": f"invalid key {key}", "details": f"invalid key {key}"}
        fault = simulator.inject(Fault(status=status, body=body, times=FOREVER))
        result = nightly(provider_case)
        assert result.status == "failed"
        message = one_line(result.error)
        assert f"HTTP {status}: invalid key ***" in message and provider_case.key_setting in message, message
        assert key not in message
        assert len(simulator.requests) == 1, f"{len(simulator.requests)} requests after a {status}: it must stop at once"
        assert loaded(provider_case) == {}
        fault_report(f"HTTP {status}", fault.served)
    simulator.clear_faults()
    assert nightly(provider_case).status == "ok"
    assert_equals_truth(provider_case, simulator)


# -- pace ------------------------------------------------------------------------------------------
class VirtualClock:
    """Stands in for the `time` module: sleeping moves the clock, instantly (by at least a
    microsecond, as a real sleep would)."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(1e-6, seconds)


@pytest.mark.parametrize("provider", ["neon", "bronto"])
def test_the_client_pace_stays_under_the_documented_limit(provider, start_sim, monkeypatch, api_key):
    """Every request of a load asks the source's rate limiter first, and that limiter's pace
    never meets the vendor's documented bucket (the simulator's, replayed in virtual time over
    500 requests)."""
    import importlib

    import simulators.base as simulator_base
    import sources.http as http

    module = importlib.import_module(f"sources.{provider}")
    limiters: List[http.RateLimiter] = []
    asked: List[int] = []

    class CountingLimiter(http.RateLimiter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            limiters.append(self)

        def acquire(self) -> None:
            asked.append(1)
            super().acquire()

    monkeypatch.setattr(module, "RateLimiter", CountingLimiter)
    sim = start_sim(provider)
    assert nightly(case(provider)).status == "ok"
    assert len(limiters) == 1 and len(asked) == len(sim.requests), "every request waits for the limiter"

    clock = VirtualClock()
    monkeypatch.setattr(http, "time", clock)
    monkeypatch.setattr(simulator_base, "time", clock)
    documented = case(provider).make_simulator(api_key=api_key).bucket  # the vendor's documented limit
    paced = http.RateLimiter(limiters[0].refill_per_s, 1.0, burst=limiters[0].capacity)
    refused = 0
    for _ in range(500):
        paced.acquire()
        allowed, _ = documented.take()
        refused += not allowed
    assert refused == 0, f"{refused} of 500 requests would have met a 429"
    assert clock.now > 1000.0, "the limiter made the client wait"
