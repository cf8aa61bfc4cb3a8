"""API clients shared by the sources: bounded retries, client-side rate limits, clear errors.

Every attempt has a deadline: the timeout bounds the whole attempt (connecting, waiting, and
reading the body to its end), not each read of the socket, so a server that trickles its answer
is cut at the timeout like one that sends nothing. 429, 5xx, dropped connections and timeouts
are retried with exponential backoff (honouring `Retry-After`, or `RateLimit-Reset` where a
vendor sends that instead, each wait capped); 401/403 are never retried. A redirect is followed
only to the same scheme, host and port: the credential headers are never sent anywhere else.
Failures surface as `ProviderError`, one line that names the provider, the endpoint, the window
and the fix, and never the key.

The limits are dlt's own runtime settings (`RuntimeConfiguration`, resolved by dlt), so one
place configures every HTTP call: `RUNTIME__REQUEST_TIMEOUT` (seconds per attempt, whole),
`RUNTIME__REQUEST_MAX_ATTEMPTS`, `RUNTIME__REQUEST_BACKOFF_FACTOR` (first backoff in seconds,
doubling) and `RUNTIME__REQUEST_MAX_RETRY_DELAY` (cap on any one wait, including a server's
`Retry-After`). The project's defaults (30, 5, 0.5, 60) are in `.dlt/config.toml` `[runtime]`.
One call therefore ends within attempts x timeout + the capped waits.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import queue
import socket
import threading
import time
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import requests
from dlt.common import logger
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests.retry import (
    DEFAULT_RETRY_EXCEPTIONS,
    DEFAULT_RETRY_STATUS,
    retry_if_status,
    wait_exponential_retry_after,
)
from dlt.sources.helpers.requests.session import Session
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from dlt.sources.helpers.rest_client.redaction import sanitize_url
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_any, retry_if_exception_type, stop_after_attempt
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool, poolmanager

# the secret registry lives in sources.secrets; re-exported, as callers import them from here
from sources import fields
from sources.lines import one_line
from sources.secrets import redact, register_header, register_password, register_secret, without_password  # noqa: F401


REQUESTS_SENT: Counter = Counter()
"""Requests answered per account in this process (retries included), keyed by the account's
label (`neon`, `neon.prod`; see `counted_as`): run summaries read it."""
_COUNT_LOCK = threading.Lock()
_COUNTED_AS = threading.local()


@contextlib.contextmanager
def counted_as(label: str) -> Iterator[None]:
    """Clients made on this thread meanwhile count their requests under `label` (an account's
    label), whichever threads later send them: two accounts of one provider loading side by
    side each get their own count."""
    before = getattr(_COUNTED_AS, "label", None)
    _COUNTED_AS.label = label
    try:
        yield
    finally:
        _COUNTED_AS.label = before


class ProviderError(Exception):
    """A provider call that failed for good. `str()` is one line, safe to print: a credential
    quoted by a vendor (in an error or in a body field) is masked as the error is made, so it
    reaches neither logs nor dlt's trace."""

    def __init__(self, provider: str, message: str, endpoint: str = "", window: object = None,
                 status: Optional[int] = None):
        message = redact(message)
        self.provider = provider
        self.message = message
        self.endpoint = endpoint
        self.window = window
        self.status = status  # the HTTP status that ended the call, when there was one
        where = " ".join(part for part in (endpoint, f"window {window}" if window else "") if part)
        super().__init__(f"{provider}: {message}" + (f" [{where}]" if where else ""))

    def located(self, endpoint: str, window: object = None) -> "ProviderError":
        """The same error with the endpoint and window filled in where it lacked them."""
        return ProviderError(
            self.provider,
            self.message,
            self.endpoint or endpoint,
            self.window or window,
            status=self.status,
        )


def retry_settings(provider: str = "runtime") -> RuntimeConfiguration:
    """dlt's `[runtime]` configuration, resolved now (env, then `.dlt/config.toml`; the project's
    defaults are written there, dlt's own apply without it), with the four request settings
    checked: a value dlt cannot read, or one out of range, is a ProviderError naming the setting."""
    try:
        config = resolve_configuration(RuntimeConfiguration())
    except ConfigValueCannotBeCoercedException as exc:
        if exc.field_name not in _IN_RANGE:
            raise
        raise _bad_setting(provider, exc.field_name, exc.field_value) from None
    for key, in_range in _IN_RANGE.items():
        value = getattr(config, key)
        if not in_range(value):
            raise _bad_setting(provider, key, format(value, "g"))
    return config


_IN_RANGE = {
    "request_timeout": lambda seconds: seconds > 0,
    "request_max_attempts": lambda attempts: attempts >= 1,
    "request_backoff_factor": lambda seconds: seconds >= 0,
    "request_max_retry_delay": lambda seconds: seconds >= 0,
}
"""dlt's request settings of `[runtime]` that the clients use, and the values each may take."""


def _bad_setting(provider: str, key: str, value: Any) -> ProviderError:
    return ProviderError(provider, f"RUNTIME__{key.upper()}={str(value)!r} must be a positive number")


class NotJSON(ValueError):
    """A successful answer whose body is not JSON (e.g. an HTML page from a proxy)."""


class wait_retry_headers(wait_exponential_retry_after):
    """Exponential backoff that also understands `RateLimit-Reset` (seconds until reset)."""

    def _get_retry_after(self, retry_state):  # type: ignore[no-untyped-def]
        waited = super()._get_retry_after(retry_state)
        if waited is not None:
            return waited
        # the response, whether it came back or was raised as an HTTPError by a response hook
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        response = getattr(error, "response", None) if error is not None else outcome.result() if outcome else None
        reset = response.headers.get("RateLimit-Reset") if response is not None else None
        if reset and reset.strip().isdigit():
            return max(self.min, min(self.max, float(reset)))
        return None


def _session(settings: RuntimeConfiguration) -> requests.Session:
    """A dlt requests session whose `send` retries with our wait (dlt's, plus RateLimit-Reset),
    whose every attempt ends by its deadline, and which follows same-origin redirects only."""
    session = _Session(timeout=settings.request_timeout, raise_for_status=False)
    session.mount("http://", _DeadlineAdapter(settings.request_timeout, pool_maxsize=16))
    session.mount("https://", _DeadlineAdapter(settings.request_timeout, pool_maxsize=16))
    retrying = Retrying(
        wait=wait_retry_headers(multiplier=settings.request_backoff_factor, max=settings.request_max_retry_delay),
        retry=retry_any(
            retry_if_status(DEFAULT_RETRY_STATUS),
            retry_if_exception_type(DEFAULT_RETRY_EXCEPTIONS),
        ),
        stop=stop_after_attempt(settings.request_max_attempts),
        reraise=True,
        retry_error_callback=lambda state: state.outcome.result(),
    )
    session.send = retrying.wraps(session.send)  # type: ignore[method-assign]
    return session


# -- redirects ------------------------------------------------------------------------------------
class RedirectRefused(Exception):
    """The API redirected to another origin (scheme, host or port), where the credential
    headers must not go: `requests` strips only `Authorization`, and would keep a vendor's own
    key header (`X-BRONTO-API-KEY`, `x-api-key`), even over plain HTTP."""

    def __init__(self, source: str, target: str):
        super().__init__(f"redirect from {origin(source)} to {origin(target)} not followed")
        self.source = source
        self.target = target


def origin(url: str) -> str:
    """`scheme://host[:port]` of `url`, without user or password, the port only when it is not
    the scheme's default."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else "")


_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Session(Session):
    """dlt's session, except that a redirect to another origin is refused (`RedirectRefused`)
    before anything is sent there, and that redirects are followed within one `send`: requests
    would call `send` again for each, through whatever wraps it (the retries, a lock)."""

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        follow = kwargs.pop("allow_redirects", True)
        response = super().send(request, allow_redirects=False, **kwargs)
        history = []
        # `next` is the redirect's request, made by requests (its origin checked below)
        while follow and response.next is not None:
            if len(history) >= self.max_redirects:
                raise requests.TooManyRedirects(f"Exceeded {self.max_redirects} redirects.", response=response)
            history.append(response)
            response = super().send(response.next, allow_redirects=False, **kwargs)
        response.history = history
        return response

    def rebuild_auth(self, prepared_request, response):  # type: ignore[no-untyped-def]
        # called for every redirect with the target's absolute URL, before it is requested
        if origin(prepared_request.url) != origin(response.url):
            raise RedirectRefused(response.url, prepared_request.url)
        super().rebuild_auth(prepared_request, response)


# -- a deadline per attempt -----------------------------------------------------------------------
class AnswerTooSlow(requests.exceptions.ReadTimeout):
    """The whole answer (headers and body) did not arrive within the attempt's deadline: a
    timeout like any other, retried and reported as one."""


class _Attempt:
    """One attempt's deadline. When it passes before the answer is read, the attempt's socket
    is shut down, which ends the read at once, however slowly the server sends."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._done = False
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()

    def attach(self, sock: Optional[socket.socket]) -> None:
        """The socket this attempt reads its answer from."""
        with self._lock:
            if not self._done:
                self._sock = sock
                if self.expired:
                    _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if not self._done:
                self.expired = True
                _shut(self._sock)

    def finish(self) -> None:
        """The attempt is over (its connection may serve another one): never shut it now."""
        with self._lock:
            self._done, self._sock = True, None


def _shut(sock: Optional[socket.socket]) -> None:
    if sock is None:
        return
    try:
        # the plain socket's shutdown, for a TLS socket too: its reader sees the end at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


class _Watchdog:
    """One thread for the process that expires the attempts whose deadline passed."""

    def __init__(self) -> None:
        self._due: List[Tuple[float, int, _Attempt]] = []
        self._changed = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def watch(self, attempt: _Attempt) -> None:
        with self._changed:
            heapq.heappush(self._due, (attempt.deadline, id(attempt), attempt))
            if self._thread is None or not self._thread.is_alive():  # none yet, or lost in a fork
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                expired = []
                while self._due and self._due[0][0] <= now:
                    expired.append(heapq.heappop(self._due)[2])
                if not expired:
                    self._changed.wait(self._due[0][0] - now if self._due else None)
                    continue
            for attempt in expired:
                attempt.expire()


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()
"""The attempt the current thread is sending, for the connection that reads its answer."""


class _WatchedConnection:
    """A urllib3 connection that hands its socket to the current attempt before it waits for
    the answer."""

    def getresponse(self):  # type: ignore[no-untyped-def]
        attempt = getattr(_CURRENT, "attempt", None)
        if attempt is not None:
            self._attempt = attempt
            attempt.attach(self.sock)  # type: ignore[attr-defined]
        return super().getresponse()  # type: ignore[misc]


class _WatchedPool:
    """A urllib3 pool whose connections, once back in the pool, are out of their attempt's reach."""

    def _put_conn(self, conn):  # type: ignore[no-untyped-def]
        attempt = getattr(conn, "_attempt", None)
        if attempt is not None:
            attempt.finish()
            conn._attempt = None
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPConnection(_WatchedConnection, urllib3_connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, urllib3_connection.HTTPSConnection):
    pass


class _HTTPPool(_WatchedPool, connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_WatchedPool, connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_WATCHED_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with `seconds` for each attempt as a whole: the body is read here,
    within the same deadline as the headers."""

    def __init__(self, seconds: float, **kwargs: Any):
        self.seconds = seconds
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:  # not a SOCKS proxy's own
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # type: ignore[no-untyped-def]
        attempt = _Attempt(self.seconds)
        outer, _CURRENT.attempt = getattr(_CURRENT, "attempt", None), attempt
        _WATCHDOG.watch(attempt)
        try:
            response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
            try:
                response.content  # noqa: B018 - the body, before the deadline
            except BaseException:
                response.close()
                raise
            return response
        except (requests.exceptions.RequestException, OSError) as exc:
            if not attempt.expired:
                raise
            raise AnswerTooSlow(f"no whole answer within {self.seconds:g} s", request=request) from exc
        finally:
            attempt.finish()
            _CURRENT.attempt = outer


class RateLimiter:
    """A token bucket shared by all threads of one client: `rate` requests per `per` seconds,
    bursts up to `burst`. Keeps us under a vendor's documented limit instead of meeting 429s."""

    def __init__(self, rate: int, per: float, burst: Optional[int] = None):
        self.capacity = float(burst or rate)
        self.refill_per_s = rate / per
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.refill_per_s
            time.sleep(wait)


class ProviderClient:
    """A dlt `RESTClient` for one provider, with its auth headers, limits and error wording.

    `key_setting` names the configuration key to fix when the API rejects the key, e.g.
    `SOURCES__NEON__API_KEY`. Timeouts and retries follow `retry_settings()` unless given.
    The header values (the key) are masked in every error, even when a vendor echoes them,
    and are sent to the base URL's origin only: a redirect elsewhere is a ProviderError.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Dict[str, str],
        key_setting: str,
        rate_limiter: Optional[RateLimiter] = None,
        settings: Optional[RuntimeConfiguration] = None,
    ):
        self.provider = provider
        self.counted_as = getattr(_COUNTED_AS, "label", None) or provider
        self.key_setting = key_setting
        self.rate_limiter = rate_limiter
        self.base_url = base_url.rstrip("/")
        self.settings = settings or retry_settings(provider)
        # the credential headers' values, and the key alone (after `Bearer ` or `Token `), are
        # masked in every ProviderError from now on
        for name, value in headers.items():
            if _is_credential_header(name):
                register_header(name, value)
        self.rest = _RESTClient(base_url=self.base_url, headers=headers, session=_session(self.settings))

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with _COUNT_LOCK:
            REQUESTS_SENT[self.counted_as] += 1

    def _fields_of(self, endpoint: str):
        """A response hook noting the fields of each page of `endpoint` (`sources.fields`)."""

        def note(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            if response.is_redirect or response.status_code >= 400:
                return
            try:
                body = response.json()
            except ValueError:
                return  # the client fails on it right after, with its own error
            fields.note(self.counted_as, endpoint, body)

        return note

    def paginate(
        self,
        path: str,
        params: Dict[str, Any],
        paginator: BasePaginator,
        data_selector: str,
        window: object = None,
        read_ahead: int = 0,
    ) -> Iterator[Any]:
        """Yield each page (`PageData`, a list with `.response`) of one window, or raise ProviderError.

        With `read_ahead`, a thread of its own asks for the following pages (still one request
        after another) while the caller handles the current one, holding at most `read_ahead`
        pages: where pages must follow each other, handling a page no longer adds to the chain.
        """
        if self.rate_limiter is not None:
            # the limiter is asked before every page, including the first
            paginator = _RateLimitedPaginator(paginator, self.rate_limiter)
            self.rate_limiter.acquire()
        try:
            pages = self.rest.paginate(
                path,
                params=params,
                paginator=paginator,
                data_selector=data_selector,
                hooks={"response": [self._count, _decode_once, _raise_for_status, self._fields_of(path)]},
            )
            yield from (_read_ahead(pages, read_ahead) if read_ahead > 0 else pages)
        except ProviderError as error:
            raise error.located(path, window) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
            raise self.error(exc, path, window) from None

    def get_json(self, path: str, params: Dict[str, Any], window: object = None) -> Any:
        """One GET that returns the decoded body, or raises ProviderError."""
        if self.rate_limiter is not None:
            self.rate_limiter.acquire()
        try:
            response = self.rest.get(path, params=params, hooks={"response": [self._count, _decode_once]})
            _raise_for_status(response)
            body = response.json()
            fields.note(self.counted_as, path, body)
            return body
        except ProviderError as error:
            raise error.located(path, window) from None
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc, path, window) from None

    def error(self, exc: BaseException, endpoint: str, window: object = None) -> ProviderError:
        """Turn any failure of a call into a one-line ProviderError that names the fix."""
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            message = (
                f"the API rejected the credentials (HTTP {status}{_vendor_detail(exc.response)}); "
                f"check {self.key_setting}"
            )
        elif status is not None:
            attempts = self.settings.request_max_attempts if status in DEFAULT_RETRY_STATUS else 1
            message = f"HTTP {status}{_vendor_detail(exc.response)} after {attempts} attempt(s)"
        elif isinstance(exc, RedirectRefused):
            message = self._redirect_refused(exc, endpoint)
        elif isinstance(exc, NotJSON):
            message = f"malformed response body: {exc}"
        elif isinstance(exc, (json.JSONDecodeError, requests.exceptions.JSONDecodeError, ValueError)):
            message = _undecodable(exc)
        elif isinstance(exc, requests.exceptions.Timeout):
            message = (
                f"the API did not answer within {self.settings.request_timeout:g} s in "
                f"{self.settings.request_max_attempts} attempts; try again later"
            )
        elif isinstance(exc, requests.exceptions.ConnectionError):
            message = (
                f"cannot reach {without_password(self.base_url)} after {self.settings.request_max_attempts} attempts "
                "(connection refused or dropped); check the base URL and the network"
            )
        else:
            message = f"{type(exc).__name__}: {one_line(exc, 200)}"
        return ProviderError(self.provider, message, endpoint, window, status=status)

    def _redirect_refused(self, exc: RedirectRefused, endpoint: str) -> str:
        """The refused redirect in one line: both origins, and the base URL to configure instead
        (the target without the endpoint's own path, when it ends with it)."""
        setting = self.key_setting[: -len("API_KEY")] + "BASE_URL" if self.key_setting.endswith("API_KEY") else "the base URL"
        target_path = urlsplit(exc.target).path.rstrip("/")
        suffix = "/" + endpoint.strip("/")
        base = origin(exc.target) + target_path[: -len(suffix)] if target_path.endswith(suffix) else None
        fix = f"set {setting} to {base}" if base else f"set {setting} to the base URL it redirects to"
        return (
            f"the API at {origin(exc.source)} redirected to {origin(exc.target)}, another host, port or scheme: not "
            f"followed, so that the key is never sent there; if that is the API's address, {fix}"
        )


_NOT_JSON_NUMBERS = ("NaN", "-Infinity", "Infinity")
"""What Python's encoder writes for a float it has no JSON for; JSON itself has none of them."""


def _undecodable(exc: BaseException) -> str:
    """Why a body could not be decoded: a NaN or Infinity literal where a number belongs (the
    API's encoder wrote a float JSON cannot hold: the body is whole, not cut), or else a body
    truncated or not JSON at all."""
    doc, pos = getattr(exc, "doc", None), getattr(exc, "pos", None)
    if isinstance(doc, str) and isinstance(pos, int):
        literal = next((word for word in _NOT_JSON_NUMBERS if doc.startswith(word, pos)), None)
        if literal is not None:
            return (f"malformed response body: {literal} at line {getattr(exc, 'lineno', '?')} column "
                    f"{getattr(exc, 'colno', '?')}, a literal JSON does not allow (the API sent a number it could not compute)")
    return f"malformed response body (truncated or not JSON: {one_line(exc, 80)})"


def _is_credential_header(name: str) -> bool:
    name = name.lower()
    return name in ("authorization", "proxy-authorization") or any(word in name for word in ("key", "token", "secret"))


class _RESTClient(RESTClient):
    """dlt's REST client, except that its debug log never shows the request headers (the key)."""

    def _log_request(self, request, prepared_url: str) -> None:  # type: ignore[no-untyped-def]
        logger.debug(f"Making {request.method.upper()} request to {sanitize_url(prepared_url)}")


def _decode_once(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Make `response.json()` decode the body once: dlt's client reads the page's data from it
    and a paginator reads its count or cursor from it again."""
    decode, decoded = response.json, []

    def json(**options: Any) -> Any:
        if not decoded:
            decoded.append(decode(**options))
        return decoded[0]

    response.json = json  # type: ignore[method-assign]


_END = object()


def _read_ahead(pages: Iterator[Any], depth: int) -> Iterator[Any]:
    """`pages`, produced on a thread of their own up to `depth` ahead of the consumer; an error
    is raised where the page it broke would have been. Closing the iterator stops the thread
    after the request in flight."""
    buffer: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)
        finally:
            pages.close()

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _raise_for_status(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.is_redirect:
        return  # the session follows it, or refuses it (RedirectRefused)
    if response.status_code >= 400:
        raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type.lower():
        raise NotJSON(
            f"the API answered {content_type.split(';')[0].strip() or 'no content type'} "
            f"instead of JSON (HTTP {response.status_code})"
        )


def _vendor_detail(response: Optional[requests.Response]) -> str:
    """The vendor's own error message, when the body has one, shortened to one line."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("message", "details", "detail", "error"):
            if isinstance(body.get(key), str):
                return ": " + one_line(body[key], 160)
    return ""


class _RateLimitedPaginator(BasePaginator):
    """Wraps a paginator so that every follow-up page waits for the rate limiter."""

    def __init__(self, inner: BasePaginator, limiter: RateLimiter):
        super().__init__()
        self.inner = inner
        self.limiter = limiter

    def init_request(self, request):  # type: ignore[no-untyped-def]
        self.inner.init_request(request)

    def update_state(self, response, data=None):  # type: ignore[no-untyped-def]
        self.inner.update_state(response, data)
        self._has_next_page = self.inner.has_next_page

    def update_request(self, request):  # type: ignore[no-untyped-def]
        if self.inner.has_next_page:
            self.limiter.acquire()
        self.inner.update_request(request)

