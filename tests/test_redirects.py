"""A redirect never carries credentials to another host, for every provider of the registry.

`requests` strips only `Authorization` on a redirect to another host, so a vendor's own key
header (Bronto's `X-BRONTO-API-KEY`, Rafay's `x-api-key`) would reach the target, over plain
HTTP after https -> http. A loopback redirector stands in front of each provider's simulator:
a redirect to another host or scheme fails the load with one line naming both and the base URL
to configure, and nothing is sent there; a redirect within the same origin is followed.
"""

from __future__ import annotations

import datetime as dt
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import pytest

from pipelines import config
from pipelines.load import load_provider
from simulators.base import Simulator
from tests.conftest import yesterday
from tests.providers import PROVIDER_NAMES, case
from tests.test_faults import SMALL

MOVED = "/moved"
"""The path prefix the redirector moves to the same origin without it."""


Answer = Callable[[str, Dict[str, str]], Tuple[int, Dict[str, str], bytes]]
"""(path and query, request headers) -> (status, response headers, body)."""


class Loopback(ThreadingHTTPServer):
    """A loopback HTTP server answering every GET with its `answer`; it keeps the headers of
    every request it was sent."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.received: List[Dict[str, str]] = []
        self.answer: Answer = lambda path, headers: (404, {}, b'{"message": "not here"}')
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                headers = {name.lower(): value for name, value in self.headers.items()}
                server.received.append(headers)
                status, extra, body = server.answer(self.path, headers)
                self.send_response(status)
                # a redirect comes without a body or a content type, as most do
                for name, value in {**({"Content-Type": "application/json"} if body else {}), **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__((host, port), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def proxy_to(sim: Simulator) -> Answer:
    """Answers as `sim` does: the request forwarded with its headers, the answer relayed."""
    port = urlsplit(sim.base_url).port

    def answer(path: str, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            upstream.request("GET", path, headers={k: v for k, v in headers.items() if k not in ("host", "connection")})
            response = upstream.getresponse()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in ("content-length", "connection", "transfer-encoding")}
            return response.status, kept, response.read()
        finally:
            upstream.close()

    return answer


def redirecting(to: Optional[str], status: int, otherwise: Optional[Answer] = None) -> Answer:
    """Redirects every request to the same path and query at `to` (another origin); with `to`
    None, moves `/moved/...` to `/...` on the same origin and answers the rest with `otherwise`."""

    def answer(path: str, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        if to is not None:
            return status, {"Location": to + path}, b""
        if path.startswith(MOVED + "/"):
            return status, {"Location": path[len(MOVED):]}, b""
        return otherwise(path, headers)

    return answer


@pytest.fixture(params=PROVIDER_NAMES)
def provider(request, api_key, monkeypatch):
    """(case, simulator) of each provider, its source configured for the simulator."""
    provider_case = case(request.param)
    sim = provider_case.make_simulator(api_key=api_key, seed=3, **SMALL.get(request.param, {})).start()
    for name, value in provider_case.env(sim).items():
        monkeypatch.setenv(name, value)
    yield provider_case, sim
    sim.stop()


@pytest.fixture
def servers():
    started: List[Loopback] = []

    def start(host: str = "127.0.0.1", port: int = 0) -> Loopback:
        started.append(Loopback(host, port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def first_day() -> dt.date:
    return yesterday() - dt.timedelta(days=1)


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("elsewhere", ["another host", "another scheme"])
def test_a_redirect_to_another_origin_fails_in_one_line_and_sends_nothing_there(provider, servers, monkeypatch, status, elsewhere,
                                                                              fault_report):
    provider_case, sim = provider
    redirector = servers()
    target = servers(host="127.0.0.2", port=redirector.server_address[1])  # only the host differs
    # another host on loopback, or this one over https (which it does not speak)
    to = target.url if elsewhere == "another host" else redirector.url.replace("http://", "https://")
    redirector.answer = redirecting(to, status)
    base_setting = config.env_name(provider_case.name, "base_url")
    monkeypatch.setenv(base_setting, redirector.url + sim.base_path)

    result = load_provider(provider_case.name, start_date=first_day())

    assert result.status == "failed"
    error = result.error
    assert "\n" not in error and "Traceback" not in error, error
    assert f"the API at {redirector.url} redirected to {to}, another host, port or scheme: not followed" in error, error
    assert error.split(" [")[0].endswith(f"set {base_setting} to {to}{sim.base_path}"), error
    assert target.received == [], "a request reached the redirect's target"
    assert len(redirector.received) == 1, "the redirect was asked again"
    fault_report(f"redirect to {elsewhere} (HTTP {status})", len(redirector.received),
                 outcome="the load failed in one line naming both origins, nothing sent there")


@pytest.mark.parametrize("status", [301, 308])
def test_a_redirect_within_the_same_origin_is_followed(provider, servers, monkeypatch, status, fault_report):
    provider_case, sim = provider
    server = servers()
    server.answer = redirecting(None, status, otherwise=proxy_to(sim))
    monkeypatch.setenv(config.env_name(provider_case.name, "base_url"), server.url + MOVED + sim.base_path)

    result = load_provider(provider_case.name, start_date=first_day())

    assert result.status == "ok", result.error
    assert result.rows > 0
    # every request was moved once, then answered with the key it was sent with
    assert len(server.received) == 2 * len(sim.requests) and all(request.authorized for request in sim.requests)
    fault_report(f"redirect within the same origin (HTTP {status})", len(sim.requests),
                 outcome="followed, every request answered with its key, the load ok")
