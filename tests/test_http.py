"""The shared HTTP client: pages read ahead while the caller works, bodies decoded once, and
every attempt bounded as a whole, however slowly a server sends its answer."""

from __future__ import annotations

import datetime as dt
import socketserver
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


# -- a deadline per attempt -----------------------------------------------------------------------
class Trickler(socketserver.ThreadingTCPServer):
    """A loopback HTTP server that sends a good JSON answer a few bytes a second: only its body,
    or the whole answer from the status line on."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, trickled: str, bytes_per_s: float = 4.0, body: bytes = b'{"items": [], "count": 0}'):
        self.trickled, self.pause_s, self.body = trickled, 1.0 / bytes_per_s, body
        self.requests = 0
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                server.requests += 1
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(server.body))
                if server.trickled == "body":
                    self.request.sendall(head)
                    head = b""
                try:
                    for byte in head + server.body:
                        self.request.sendall(bytes([byte]))
                        time.sleep(server.pause_s)
                except OSError:
                    pass  # the client hung up

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> "Trickler":
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


@pytest.mark.parametrize("trickled", ["body", "headers"])
def test_an_answer_that_trickles_in_is_cut_at_the_timeout_of_each_attempt(trickled, monkeypatch, fault_report):
    """requests' timeout bounds each read of the socket, so 4 bytes a second never trip it; the
    deadline bounds the attempt: one call ends within attempts x timeout + the capped waits."""
    timeout_s, attempts, max_delay_s = 1.0, 3, 0.1
    for key, value in {"TIMEOUT": timeout_s, "MAX_ATTEMPTS": attempts, "BACKOFF_FACTOR": 0.05,
                       "MAX_RETRY_DELAY": max_delay_s}.items():
        monkeypatch.setenv(f"RUNTIME__REQUEST_{key}", str(value))
    with Trickler(trickled) as server:  # a whole answer takes about 7 s (body) or 25 s (headers too)
        api = ProviderClient("adverity", server.url, {"Authorization": f"Token {KEY}"}, "SOURCES__ADVERITY__API_KEY")
        started = time.monotonic()
        with pytest.raises(ProviderError) as raised:
            api.get_json("/api/v1/usage/", {"page": 1})
        elapsed = time.monotonic() - started
        assert server.requests == attempts
    assert str(raised.value) == (
        f"adverity: the API did not answer within {timeout_s:g} s in {attempts} attempts; try again later [/api/v1/usage/]"
    )
    bound = attempts * timeout_s + (attempts - 1) * max_delay_s
    assert bound - 0.5 < elapsed < bound + 0.5, f"{elapsed:.2f} s for a bound of {bound:.2f} s"
    fault_report(f"answer trickling in ({trickled}, 4 bytes/s)", server.requests,
                 outcome="one line within attempts x timeout + the capped waits")

