"""What is configured, checked before anything runs.

Values come from dlt's own places (env vars, then `.dlt/secrets.toml` and `.dlt/config.toml`).
Every mistake becomes a `ConfigError`: one line naming the setting and the fix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import dlt

import sources
from sources import windows

DESTINATIONS: Tuple[str, ...] = ("duckdb", "postgres")
DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
DEFAULT_LOOKBACK_DAYS = 2
POSTGRES_CONNECT_TIMEOUT_S = 10
"""How long the Postgres check waits for a server that does not answer (a refused port fails at once)."""
POSTGRES_SETTING = "DESTINATION__POSTGRES__CREDENTIALS"

# exit codes, documented in the README
EXIT_OK = 0
EXIT_FAILED = 1  # a provider, a model or a check failed; the others ran
EXIT_CONFIG = 2  # bad input or configuration: nothing ran
EXIT_LOCKED = 3  # another run holds the warehouse


class ConfigError(Exception):
    """A configuration or input mistake; `str()` is one line naming the setting and the fix."""


def env_name(provider: str, key: str) -> str:
    return f"SOURCES__{provider.upper()}__{key.upper()}"


def provider_names() -> Tuple[str, ...]:
    """Every provider the registry holds (`sources.providers()`), in its order."""
    return sources.names()


def source_function(provider: str):
    return sources.get(provider).source


def _lookup(provider: str, key: str) -> Optional[str]:
    """A provider setting from env or the toml files; secrets and config alike."""
    for accessor in (dlt.secrets, dlt.config):
        value = accessor.get(f"sources.{provider}.{key}")
        if value is not None:
            return str(value)
    return None


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    start_date: Optional[dt.date]
    lookback_days: int


def missing_settings(provider: str) -> List[str]:
    """Env var names of the required settings that are absent or empty."""
    required = sources.get(provider).required_settings
    return [env_name(provider, key) for key in required if not (_lookup(provider, key) or "").strip()]


def is_configured(provider: str) -> bool:
    """Configured means its API key is present (CONTRACT: credentials decide)."""
    return _lookup(provider, "api_key") is not None


def parse_providers(text: Optional[str]) -> List[str]:
    """`a,b` or `all`/empty -> provider names, refusing unknown ones."""
    known = provider_names()
    if not text or text.strip() == "all":
        return list(known)
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"unknown provider {unknown[0]!r}; choose from {', '.join(known)} or all")
    return list(dict.fromkeys(names))


def check_provider(provider: str, now: Optional[dt.datetime] = None) -> ProviderConfig:
    """Validate one provider's settings; raise ConfigError naming the first problem."""
    missing = missing_settings(provider)
    if missing:
        raise ConfigError(f"{provider}: {missing[0]} is missing or empty; set it in the environment or .dlt/secrets.toml")
    base_url = _lookup(provider, "base_url")
    if base_url is not None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{provider}: {env_name(provider, 'base_url')}={base_url!r} is not a URL; use e.g. https://host.example.com"
            )
    start_text = _lookup(provider, "start_date")
    start_date = None
    if start_text:
        try:
            start_date = windows.parse_day(start_text, env_name(provider, "start_date"))
        except windows.WindowError as exc:
            raise ConfigError(str(exc)) from None
        if start_date > windows.last_complete_day(now):
            raise ConfigError(
                f"{provider}: {env_name(provider, 'start_date')}={start_text} is not a complete day yet; "
                f"use {windows.last_complete_day(now).isoformat()} or earlier"
            )
    _check_source_settings(provider)
    lookback_text = _lookup(provider, "lookback_days")
    lookback = DEFAULT_LOOKBACK_DAYS
    if lookback_text is not None:
        if not lookback_text.strip().isdigit():
            raise ConfigError(f"{provider}: {env_name(provider, 'lookback_days')}={lookback_text!r} must be a whole number of days")
        lookback = int(lookback_text)
    return ProviderConfig(provider, start_date, lookback)


def oldest_servable_day(provider: str, now: Optional[dt.datetime] = None) -> Optional[dt.date]:
    """The oldest day the provider's API still serves (None: any day)."""
    return sources.get(provider).limits.oldest_day(now)


def _check_source_settings(provider: str) -> None:
    """The settings whose form only the source knows (e.g. Neon's org id), checked with the
    provider's own rule before anything runs."""
    from sources.http import ProviderError

    try:
        sources.get(provider).check_settings(lambda key: _lookup(provider, key))
    except ProviderError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Destination:
    name: str
    location: str  # duckdb file path, or the postgres URL without its password

    def dlt_destination(self):
        if self.name == "duckdb":
            return dlt.destinations.duckdb(credentials=self.location)
        return dlt.destinations.postgres()

    @property
    def identity(self) -> str:
        """What makes this warehouse itself: the DuckDB file's real path, or the Postgres
        server and database (never the user or password)."""
        if self.name == "duckdb":
            return "duckdb:" + os.path.realpath(self.location)
        parts = urlsplit(self.location)
        return f"postgres:{(parts.hostname or '').lower()}:{parts.port or 5432}/{parts.path.lstrip('/')}"

    @property
    def pipelines_dir(self) -> str:
        """The working folder of this warehouse's pipelines (local state, pending packages).

        One per warehouse under dlt's data dir (`DLT_DATA_DIR`), named by a digest of its
        identity, so two warehouses never share a cursor or a pending package, whatever
        `DLT_DATA_DIR` is; the pipeline names stay those the warehouses' stored state knows.
        """
        from dlt.common.pipeline import get_dlt_pipelines_dir

        digest = hashlib.sha256(self.identity.encode()).hexdigest()[:16]
        return os.path.join(get_dlt_pipelines_dir(), f"{self.name}-{digest}")

    @property
    def loader_file_format(self) -> str:
        # Arrow tables land as parquet in DuckDB, and through COPY (csv) in Postgres: never
        # dlt's row-by-row insert statements.
        return "parquet" if self.name == "duckdb" else "csv"


def destination(name: Optional[str] = None) -> Destination:
    name = (name or os.environ.get("DESTINATION") or "duckdb").strip().lower()
    if name not in DESTINATIONS:
        raise ConfigError(f"unknown destination {name!r}; use --destination duckdb or --destination postgres")
    if name == "duckdb":
        path = dlt.config.get("destination.duckdb.credentials") or dlt.secrets.get("destination.duckdb.credentials")
        path = str(path or DEFAULT_DUCKDB_PATH)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"DESTINATION__DUCKDB__CREDENTIALS={path!r}: cannot create its folder ({exc.strerror}); "
                "choose a path in a writable folder"
            ) from None
        return Destination("duckdb", path)
    url = dlt.secrets.get("destination.postgres.credentials") or dlt.config.get("destination.postgres.credentials")
    if not url:
        raise ConfigError(f"{POSTGRES_SETTING} is missing; set it to postgresql://user:pass@host:port/db")
    url = str(url).strip()
    check_postgres(url)
    return Destination("postgres", _without_password(url))


def check_postgres(url: str) -> None:
    """Connect once, so that a wrong or unreachable warehouse is a configuration error before
    anything runs, in one line that never shows the password."""
    try:
        parts = urlsplit(url)
        password = parts.password
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, password, port_ok = None, None, False
    if parts is None or parts.scheme not in ("postgres", "postgresql") or not parts.hostname or not port_ok:
        raise ConfigError(f"{POSTGRES_SETTING} is not a Postgres URL; use postgresql://user:pass@host:port/db")
    if not password:
        raise ConfigError(
            f"{POSTGRES_SETTING} has no password; dlt needs one in the URL "
            "(postgresql://user:pass@host:port/db; with trust auth any value works)"
        )
    import psycopg2

    from sources.http import register_secret

    register_secret(password)  # masked in every error of this process from now on
    try:
        psycopg2.connect(url, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S).close()
    except psycopg2.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(password, "***")
        raise ConfigError(
            f"{POSTGRES_SETTING}: cannot connect to {_without_password(url)} ({reason}); "
            "check the host, port, database, user and password, and that the server is running"
        ) from None


def postgres_url() -> str:
    return str(dlt.secrets.get("destination.postgres.credentials") or dlt.config.get("destination.postgres.credentials"))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def configured_providers(requested: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """(providers to run, {skipped provider: the missing key}) for a request of names."""
    run, skipped = [], {}
    for provider in requested:
        if is_configured(provider):
            run.append(provider)
        else:
            skipped[provider] = env_name(provider, "api_key")
    return run, skipped
