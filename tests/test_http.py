"""The shared HTTP client: pages read ahead while the caller works, bodies decoded once."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import requests

from simulators.adverity import AdveritySimulator
from simulators.base import Fault
from sources import windows
from sources.adverity import helpers, settings
from sources.http import ProviderClient, ProviderError

KEY = "http-test-key"


def client(sim: AdveritySimulator) -> ProviderClient:
    return ProviderClient("adverity", sim.base_url, {"Authorization": f"Token {KEY}"}, key_setting="SOURCES__ADVERITY__API_KEY")


def pages(sim: AdveritySimulator, read_ahead: int, page_size: int = 10):
    window = windows.Window(windows.last_complete_day() - dt.timedelta(days=2), windows.last_complete_day())
    return client(sim).paginate(settings.USAGE_PATH, {**helpers.usage_params(window), "page_size": page_size},
                                helpers.CountPaginator(page_size), "items", window, read_ahead=read_ahead)


@pytest.fixture
def sim():
    with AdveritySimulator(api_key=KEY, n_workspaces=2, datastreams_per_workspace=5) as simulator:
        yield simulator


def wait_for_requests(sim: AdveritySimulator, count: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(sim.requests) >= count:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_the_next_page_is_asked_for_while_the_caller_handles_this_one(sim, read_ahead):
    iterator = pages(sim, read_ahead)
    next(iterator)
    # the caller still holds page 1: with read-ahead, pages 2 and 3 are on their way already
    assert wait_for_requests(sim, 3, seconds=3.0 if read_ahead else 0.5) == bool(read_ahead)
    received = 1 + sum(1 for _ in iterator)
    assert received == len(sim.requests) > 3  # every page once, none beyond the last
    assert [int(r.one("page")) for r in sim.requests] == list(range(1, received + 1))
    assert sim.max_concurrency == 1  # still one request at a time


def test_an_error_surfaces_at_the_page_it_broke(sim):
    sim.inject(Fault(kind="status", status=401, after=2, times=1, body={"detail": "Invalid token."}))
    iterator = pages(sim, read_ahead=2)
    assert len(next(iterator)) == 10 and len(next(iterator)) == 10
    with pytest.raises(ProviderError, match="HTTP 401"):
        next(iterator)


def test_closing_early_stops_the_reader(sim):
    iterator = pages(sim, read_ahead=1, page_size=1)
    next(iterator)
    iterator.close()
    asked = len(sim.requests)
    time.sleep(0.3)
    assert len(sim.requests) == asked <= 3  # page 1, the one held, at most one in flight
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_each_body_is_decoded_once(sim, monkeypatch):
    decoded = []
    loads = requests.models.complexjson.loads

    def counting(*args, **kwargs):
        decoded.append(1)
        return loads(*args, **kwargs)

    monkeypatch.setattr(requests.models.complexjson, "loads", counting)
    assert sum(1 for _ in pages(sim, read_ahead=0)) == len(sim.requests) > 1
    assert len(decoded) == len(sim.requests)  # not once for the items and again for the count


def test_the_request_settings_are_dlts_runtime_configuration_with_the_projects_defaults(monkeypatch):
    """`[runtime]` in .dlt/config.toml holds the project's defaults; RUNTIME__* overrides them."""
    from sources.http import retry_settings

    for key in ("REQUEST_TIMEOUT", "REQUEST_MAX_ATTEMPTS", "REQUEST_BACKOFF_FACTOR", "REQUEST_MAX_RETRY_DELAY"):
        monkeypatch.delenv(f"RUNTIME__{key}", raising=False)
    defaults = retry_settings()
    assert (defaults.request_timeout, defaults.request_max_attempts) == (30, 5)
    assert (defaults.request_backoff_factor, defaults.request_max_retry_delay) == (0.5, 60)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    assert retry_settings().request_max_attempts == 2


@pytest.mark.parametrize("key, value", [
    ("REQUEST_MAX_ATTEMPTS", "zero"), ("REQUEST_MAX_ATTEMPTS", "0"), ("REQUEST_TIMEOUT", "0"),
    ("REQUEST_BACKOFF_FACTOR", "-1"), ("REQUEST_MAX_RETRY_DELAY", ""),
])
def test_a_bad_request_setting_is_one_provider_error_naming_it(monkeypatch, key, value):
    from sources.http import retry_settings

    monkeypatch.setenv(f"RUNTIME__{key}", value)
    with pytest.raises(ProviderError) as raised:
        retry_settings("neon")
    assert str(raised.value) == f"neon: RUNTIME__{key}={value!r} must be a positive number"
