"""What every simulator shares: the HTTP server, the request log, auth, latency, faults."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

UTC = dt.timezone.utc


@dataclass
class Request:
    """One request as the server received it (the auth header's value is not kept)."""

    method: str
    path: str
    query: Dict[str, List[str]]
    authorized: bool = True
    at: float = field(default_factory=time.monotonic)
    """When it arrived (`time.monotonic()`), to check the waits between retries."""
    fault: Optional[str] = None
    """The kind of fault served instead of the real answer, if any."""

    def one(self, name: str) -> Optional[str]:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    raw: Optional[bytes] = None  # sent as is, for malformed bodies


FOREVER = 1 << 62
"""`Fault.times` for an outage that lasts the whole run."""


@dataclass
class Fault:
    """A misbehaviour to serve instead of the real answer, `times` times, for matching paths.

    kind:
    - "status": `status` with `body` and `headers` as given (429 with or without `Retry-After`
      or `RateLimit-Reset`, 5xx, 401/403; `times=FOREVER` is a provider down all night);
    - "drop": close the connection without an answer;
    - "slow": sleep `delay_s` (longer than the client's read timeout), then answer normally;
    - "raw": status 200 with `raw` bytes (not JSON, truncated JSON; with `headers` an HTML page);
    - "mutate": the real answer with its JSON body passed through `mutate` (schema drift);
    - "block": hold the request until `release` is set (at most `delay_s`, default a minute),
      setting `reached` when it starts waiting, then answer normally: a test can act, e.g.
      kill the client, at exactly that moment.

    The first `after` matching requests are answered normally, so a fault can hit, say, the
    second page of a window. `served` counts the faults served.
    """

    kind: str = "status"
    status: int = 500
    body: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    delay_s: float = 0.0
    times: int = 1
    path_contains: str = ""
    after: int = 0
    mutate: Optional[Callable[[Any], Any]] = None
    served: int = 0
    matched: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    KINDS = ("status", "drop", "slow", "raw", "mutate", "block")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"fault kind must be one of {self.KINDS}")


class Simulator:
    """Base class: subclasses set `provider`, implement `authorized()` and register routes."""

    provider = "base"
    base_path = ""  # path prefix of the vendor's base URL, e.g. "/api/v2"

    def __init__(self, api_key: str, seed: int = 0, latency_ms: float = 0.0, port: int = 0,
                 clock: Optional[Callable[[], dt.datetime]] = None):
        self.api_key = api_key
        self.seed = seed
        self.latency_s = latency_ms / 1000.0
        self.port = port
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.requests: List[Request] = []
        self.max_concurrency = 0
        """The most requests this server was answering at once (Adverity asks for one)."""
        self._in_flight = 0
        self.faults: List[Fault] = []
        self.lock = threading.Lock()
        self.routes: Dict[str, Callable[[Request], Response]] = {}
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- to implement ------------------------------------------------------------------------
    def authorized(self, headers: Dict[str, str]) -> Optional[Response]:
        """None when the request carries the right key, else the vendor's error response."""
        raise NotImplementedError

    def truth(self, first: dt.date, last: dt.date) -> List[Dict[str, Any]]:
        """Exact expected daily figures, one dict per usage_date × account_id × resource_type ×
        resource_id × metric, with `quantity`, for the inclusive day range."""
        raise NotImplementedError

    def source_env(self) -> Dict[str, str]:
        """The dlt settings (env vars) that point this provider's source at this simulator.
        Subclasses add what their API needs (e.g. an org id) by extending the dict."""
        prefix = f"SOURCES__{self.provider.upper()}__"
        return {prefix + "API_KEY": self.api_key, prefix + "BASE_URL": self.base_url + self.base_path}

    # -- helpers for subclasses ----------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self.clock()

    def today(self) -> dt.date:
        return self.now().date()

    def rand(self, *parts: Any) -> int:
        """A deterministic 64-bit number from the seed and the given parts."""
        digest = hashlib.blake2b(repr((self.seed, self.provider) + parts).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Serve real answers again; blocked requests are released."""
        with self.lock:
            for fault in self.faults:
                fault.release.set()
            self.faults.clear()

    def requests_to(self, path_contains: str = "") -> List[Request]:
        with self.lock:
            return [r for r in self.requests if path_contains in r.path]

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- server ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Its address; a stopped simulator keeps it (and comes back on it when restarted)."""
        assert self._server is not None or self.port, "simulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1] if self._server is not None else self.port}"

    def start(self) -> "Simulator":
        self._server, self._thread = _serve(self.provider, self.port, self._handle)
        # a restarted simulator comes back on the same port (a provider back after an outage)
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        with self.lock:
            for fault in self.faults:
                fault.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _take_fault(self, path: str) -> Optional[Fault]:
        with self.lock:
            for fault in self.faults:
                if fault.served < fault.times and fault.path_contains in path:
                    fault.matched += 1
                    if fault.matched <= fault.after:
                        continue
                    fault.served += 1
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self._in_flight += 1
            self.max_concurrency = max(self.max_concurrency, self._in_flight)
        try:
            self._answer(handler)
        finally:
            with self.lock:
                self._in_flight -= 1

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        denied = self.authorized(headers)
        request = Request("GET", url.path, parse_qs(url.query, keep_blank_values=True), denied is None)
        with self.lock:
            self.requests.append(request)
        if self.latency_s:
            time.sleep(self.latency_s)
        fault = self._take_fault(url.path)
        request.fault = fault.kind if fault is not None else None
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            try:
                handler.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if fault is not None and fault.kind == "block":
            fault.reached.set()
            fault.release.wait(fault.delay_s or 60.0)
        if denied is not None:
            response = denied
        elif fault is not None and fault.kind == "raw":
            response = Response(200, raw=fault.raw, headers={"Content-Type": "application/json", **fault.headers})
        elif fault is not None and fault.kind == "status":
            response = Response(fault.status, fault.body, dict(fault.headers))
        else:
            response = self._route(url.path, request)
            if fault is not None and fault.kind == "mutate" and response.status == 200 and response.raw is None:
                response = Response(response.status, fault.mutate(copy.deepcopy(response.body)), response.headers)
        try:
            self._send(handler, response)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a slow answer past its read timeout)

    def _route(self, path: str, request: Request) -> Response:
        route = self.routes.get(path.rstrip("/") or "/")
        if route is None:
            return Response(404, {"message": f"no route {path}"})
        try:
            return route(request)
        except Exception as exc:  # a simulator bug must show up as a 500, not a hang
            return Response(500, {"message": f"simulator error: {exc!r}"})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, response: Response) -> None:
        if response.raw is not None:
            payload = response.raw
        else:
            payload = json.dumps(response.body, separators=(",", ":")).encode()
        handler.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


class Tenants:
    """Several tenants of one vendor behind one host, as a SaaS API serves its customers: each
    request is answered by the tenant whose key it carries, from that tenant's own data, with its
    own request log, faults and rate limit; a key no tenant knows gets the first one's refusal.
    Each tenant's `base_url` is the shared host."""

    def __init__(self, *tenants: Simulator):
        assert tenants and len({tenant.provider for tenant in tenants}) == 1, "tenants of one vendor"
        self.tenants = list(tenants)
        self._server: Optional[ThreadingHTTPServer] = None

    def start(self) -> "Tenants":
        self._server, _ = _serve(f"{self.tenants[0].provider}-tenants", 0, self._dispatch)
        for tenant in self.tenants:
            tenant.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        for tenant in self.tenants:
            tenant.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        tenant = next((tenant for tenant in self.tenants if tenant.authorized(headers) is None), self.tenants[0])
        tenant._handle(handler)


def _serve(name: str, port: int, handle: Callable[[BaseHTTPRequestHandler], None]) -> Tuple["_Server", threading.Thread]:
    """An HTTP server on loopback (`port` 0: any free one) whose GETs go to `handle`, serving in a
    daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes: with Nagle's algorithm the body waits for
        # the client's delayed ACK, about 40 ms per answer on loopback
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802
            handle(self)

    server = _Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{name}-sim", daemon=True)
    thread.start()
    return server, thread


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that gave up on a slow answer: expected, not a simulator bug
        super().handle_error(request, client_address)


class TokenBucket:
    """Server-side rate limit: `rate` per `per` seconds, bursts up to `burst`."""

    def __init__(self, rate: float, per: float, burst: Optional[float] = None):
        self.capacity = float(burst if burst is not None else rate)
        self.refill_per_s = rate / per
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> Tuple[bool, float]:
        """(allowed, seconds until the next token)."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True, 0.0
            return False, (1 - self.tokens) / self.refill_per_s

    def remaining(self) -> int:
        with self.lock:
            return int(self.tokens)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def iso_z(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> dt.datetime:
    """RFC 3339 (with Z or offset) to an aware UTC datetime; ValueError when malformed."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return value.astimezone(UTC)

