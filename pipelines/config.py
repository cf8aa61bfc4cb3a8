"""What is configured, checked before anything runs.

Values come from dlt's own places (env vars, then `.dlt/secrets.toml` and `.dlt/config.toml`).
Every mistake becomes a `ConfigError`: one line naming the setting and the fix.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import dlt

import sources
from sources import windows
from sources.secrets import redact, register_password, without_password

DESTINATIONS: Tuple[str, ...] = ("duckdb", "postgres")
DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
DEFAULT_LOOKBACK_DAYS = 2
POSTGRES_CONNECT_TIMEOUT_S = 10
"""How long the Postgres check waits for a server that does not answer (a refused port fails at once)."""
POSTGRES_SETTING = "DESTINATION__POSTGRES__CREDENTIALS"
DEFAULT_LOCK_TIMEOUT_S = 5.0
"""How long a statement of the model runner on Postgres waits for a table or view another
session holds (DESTINATION__POSTGRES__LOCK_TIMEOUT, seconds)..."""
DEFAULT_LOCK_ATTEMPTS = 3
"""...and how many times it tries (DESTINATION__POSTGRES__LOCK_ATTEMPTS) before the run fails
naming that session."""

# exit codes, documented in the README
EXIT_OK = 0
EXIT_FAILED = 1  # a provider, a model or a check failed; the others ran
EXIT_CONFIG = 2  # bad input or configuration: nothing ran
EXIT_LOCKED = 3  # another run holds the warehouse


class ConfigError(Exception):
    """A configuration or input mistake; `str()` is one line naming the setting and the fix."""


DEFAULT_ACCOUNT = "default"
"""The account of a provider configured without SOURCES__<PROVIDER>__ACCOUNTS."""
ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def split_label(label: str) -> Tuple[str, str]:
    """`neon` -> ("neon", "default"); `neon.prod` -> ("neon", "prod")."""
    provider, _, account = label.partition(".")
    return provider, account or DEFAULT_ACCOUNT


def label_of(provider: str, account: str) -> str:
    """The name of one provider account in commands and summaries: `neon`, or `neon.prod`."""
    return provider if account == DEFAULT_ACCOUNT else f"{provider}.{account}"


def env_name(label: str, key: str) -> str:
    """A setting's environment variable: SOURCES__NEON__API_KEY, or SOURCES__NEON__PROD__API_KEY
    for an account of several."""
    provider, account = split_label(label)
    section = provider if account == DEFAULT_ACCOUNT else f"{provider}__{account}"
    return f"SOURCES__{section.upper()}__{key.upper()}"


def dataset_of(label: str) -> str:
    """The raw dataset of a provider account: `raw_<provider>` for a provider's one account,
    `raw_<provider>_<account>` for each of several. Each account's pipeline merges whole days
    into tables of its own, so one account's reload never deletes another's rows, and accounts
    never race on one schema."""
    provider, account = split_label(label)
    return f"raw_{provider}" if account == DEFAULT_ACCOUNT else f"raw_{provider}_{account}"


def provider_names() -> Tuple[str, ...]:
    """Every provider the registry holds (`sources.providers()`), in its order."""
    return sources.names()


def source_function(label: str):
    """The account's dlt source: the provider's, looking its settings up in the account's
    section first (`sources.<provider>.<account>.<key>`, then `sources.<provider>.<key>`)."""
    provider, account = split_label(label)
    source = sources.get(provider).source
    return source if account == DEFAULT_ACCOUNT else source.clone(name=account, section=provider)


def _secret_keys(provider: str) -> Tuple[str, ...]:
    """The source's arguments that dlt resolves as secrets (env and secrets.toml only)."""
    return _secret_arguments(sources.get(provider).source)


@functools.lru_cache(maxsize=None)
def _secret_arguments(source) -> Tuple[str, ...]:
    from dlt.common.configuration.inject import get_fun_spec
    from dlt.common.configuration.specs.base_configuration import is_secret_hint

    spec = getattr(source, "spec", None) or get_fun_spec(getattr(source, "_f", source))
    return tuple(name for name, hint in spec.get_resolvable_fields().items() if is_secret_hint(hint))


def lookup(label: str, key: str) -> Optional[str]:
    """A setting from env or the toml files as the account's source resolves it: the
    account's own section first, then the provider's; a secret (the API key) only where dlt
    reads secrets (env, secrets.toml), the rest from secrets and config alike."""
    provider, account = split_label(label)
    paths = [f"sources.{provider}.{key}"]
    if account != DEFAULT_ACCOUNT:
        paths.insert(0, f"sources.{provider}.{account}.{key}")
    accessors = (dlt.secrets,) if key in _secret_keys(provider) else (dlt.secrets, dlt.config)
    for path in paths:
        for accessor in accessors:
            value = accessor.get(path)
            if value is not None:
                return str(value)
    return None


def accounts(provider: str) -> List[str]:
    """The provider's accounts: SOURCES__<PROVIDER>__ACCOUNTS (a comma list), else its one."""
    text = lookup(provider, "accounts")
    if text is None or not text.strip():
        return [DEFAULT_ACCOUNT]
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    # `staging` would name the raw dataset dlt stages the provider's merges in
    bad = [name for name in names if not ACCOUNT_NAME.match(name) or name in (DEFAULT_ACCOUNT, "staging")
           or name.endswith("_staging")]
    if bad:
        raise ConfigError(
            f"{env_name(provider, 'accounts')}: {bad[0]!r} is not an account name; use lower-case letters, digits "
            "and _ (e.g. prod,test), other than default and staging"
        )
    return list(dict.fromkeys(names))


def labels(providers: Sequence[str]) -> List[str]:
    """Every account of these providers, by label."""
    return [label_of(provider, account) for provider in providers for account in accounts(provider)]


def provider_of(label: str):
    return sources.get(split_label(label)[0])


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    start_date: Optional[dt.date]
    lookback_days: int


def missing_settings(label: str) -> List[str]:
    """Env var names of the required settings that are absent or empty (the account's own
    names for an account of several)."""
    required = provider_of(label).required_settings
    return [env_name(label, key) for key in required if not (lookup(label, key) or "").strip()]


def is_configured(label: str) -> bool:
    """Configured means its API key is present (CONTRACT: credentials decide); the accounts
    listed in SOURCES__<PROVIDER>__ACCOUNTS are configured by that list."""
    return split_label(label)[1] != DEFAULT_ACCOUNT or lookup(label, "api_key") is not None


def parse_providers(text: Optional[str]) -> List[str]:
    """`a,b` or `all`/empty -> account labels: a provider stands for all its accounts,
    `provider.account` for one; unknown providers and accounts are refused."""
    known = provider_names()
    if not text or text.strip() == "all":
        return labels(known)
    out: List[str] = []
    for name in (name.strip().lower() for name in text.split(",") if name.strip()):
        provider, _, account = name.partition(".")
        if provider not in known:
            raise ConfigError(f"unknown provider {provider!r}; choose from {', '.join(known)} or all")
        if not account:
            out += labels([provider])
        elif account in accounts(provider) and account != DEFAULT_ACCOUNT:
            out.append(name)
        else:
            listed = [a for a in accounts(provider) if a != DEFAULT_ACCOUNT]
            raise ConfigError(
                f"{provider} has no account {account!r}; {env_name(provider, 'accounts')} lists "
                f"{', '.join(listed) if listed else 'none'}"
            )
    return list(dict.fromkeys(out))


def check_provider(provider: str, now: Optional[dt.datetime] = None) -> ProviderConfig:
    """Validate one provider's settings; raise ConfigError naming the first problem."""
    missing = missing_settings(provider)
    if missing:
        raise ConfigError(f"{provider}: {missing[0]} is missing or empty; set it in the environment or .dlt/secrets.toml")
    base_url = lookup(provider, "base_url")
    if base_url is not None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{provider}: {env_name(provider, 'base_url')}={base_url!r} is not a URL; use e.g. https://host.example.com"
            )
    start_text = lookup(provider, "start_date")
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
    lookback_text = lookup(provider, "lookback_days")
    lookback = DEFAULT_LOOKBACK_DAYS
    if lookback_text is not None:
        if not lookback_text.strip().isdigit():
            raise ConfigError(f"{provider}: {env_name(provider, 'lookback_days')}={lookback_text!r} must be a whole number of days")
        lookback = int(lookback_text)
    return ProviderConfig(provider, start_date, lookback)


def oldest_servable_day(label: str, now: Optional[dt.datetime] = None) -> Optional[dt.date]:
    """The oldest day the provider's API still serves (None: any day)."""
    return provider_of(label).limits.oldest_day(now)


def _check_source_settings(provider: str) -> None:
    """The settings whose form only the source knows (e.g. Neon's org id), checked with the
    provider's own rule before anything runs."""
    from sources.http import ProviderError

    try:
        provider_of(provider).check_settings(lambda key: lookup(provider, key))
    except ProviderError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Destination:
    name: str
    location: str  # duckdb file path, or the postgres URL without its password

    def dlt_destination(self):
        if self.name == "duckdb":
            from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

            # every connection dlt opens (loads, models, checks) gets the memory cap
            return dlt.destinations.duckdb(credentials=DuckDbCredentials(self.location, global_config=duckdb_settings()))
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


DUCKDB_MEMORY_LIMIT = "96MB"
"""DuckDB's memory (DESTINATION__DUCKDB__MEMORY_LIMIT): merges and model builds beyond it spill
to disk instead of growing with the data."""


def duckdb_settings() -> Dict[str, object]:
    """The settings of the DuckDB warehouse's database, given to dlt's credentials
    (`global_config`): its memory cap, and no insertion order to keep (which would hold whole
    results in memory)."""
    limit = str(dlt.config.get("destination.duckdb.memory_limit") or DUCKDB_MEMORY_LIMIT).strip()
    return {"memory_limit": limit, "preserve_insertion_order": False}


def _check_duckdb_settings() -> None:
    import duckdb

    with duckdb.connect(":memory:") as connection:
        for name, value in duckdb_settings().items():
            try:
                connection.execute(f"set {name} = ?", [value])
            except duckdb.Error:
                raise ConfigError(f"DESTINATION__DUCKDB__{name.upper()}={value!r} is not valid; "
                                  "give a memory size such as 96MB or 1GB") from None


@functools.lru_cache(maxsize=None)
def warn_if_secrets_readable() -> None:
    """Warn once per run about each `secrets.toml` dlt read (the project's `.dlt/`, dlt's global
    folder) that others may read: the keys in it are as safe as its mode."""
    from dlt.common.configuration.providers.toml import SecretsTomlProvider

    for provider in dlt.secrets.config_providers:
        for path in provider.present_locations if isinstance(provider, SecretsTomlProvider) else ():
            mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0
            if mode & 0o077:
                path = os.path.abspath(path)
                logging.getLogger("pipelines").warning(
                    "%s is open to users other than its owner (mode %04o); run chmod 600 %s", path, mode, path)


def destination(name: Optional[str] = None) -> Destination:
    warn_if_secrets_readable()
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
        _check_duckdb_settings()
        return Destination("duckdb", path)
    url = dlt.secrets.get("destination.postgres.credentials") or dlt.config.get("destination.postgres.credentials")
    if not url:
        raise ConfigError(f"{POSTGRES_SETTING} is missing; set it to postgresql://user:pass@host:port/db")
    url = str(url).strip()
    postgres_lock_wait()  # checked before anything runs
    check_postgres(url)
    return Destination("postgres", _without_password(url))


def postgres_lock_wait() -> Tuple[float, int]:
    """(seconds a statement waits for a lock another session holds, attempts), from
    DESTINATION__POSTGRES__LOCK_TIMEOUT and DESTINATION__POSTGRES__LOCK_ATTEMPTS."""
    timeout = dlt.config.get("destination.postgres.lock_timeout")
    attempts = dlt.config.get("destination.postgres.lock_attempts")
    try:
        timeout_s = DEFAULT_LOCK_TIMEOUT_S if timeout is None else float(str(timeout).strip())
        ok = 0 < timeout_s < 86400
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"DESTINATION__POSTGRES__LOCK_TIMEOUT={timeout!r} is not a number of seconds above 0, e.g. 5")
    text = str(DEFAULT_LOCK_ATTEMPTS if attempts is None else attempts).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"DESTINATION__POSTGRES__LOCK_ATTEMPTS={attempts!r} is not a whole number of attempts above 0, e.g. 3")
    return timeout_s, int(text)


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

    register_password(password)  # masked in every error of this process from now on
    try:
        psycopg2.connect(url, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S).close()
    except psycopg2.Error as exc:
        reason = redact((str(exc).strip().splitlines() or [type(exc).__name__])[0])
        raise ConfigError(
            f"{POSTGRES_SETTING}: cannot connect to {_without_password(url)} ({reason}); "
            "check the host, port, database, user and password, and that the server is running"
        ) from None


def postgres_url() -> str:
    return str(dlt.secrets.get("destination.postgres.credentials") or dlt.config.get("destination.postgres.credentials"))


def _without_password(url: str) -> str:
    return without_password(url)


def configured_providers(requested: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """(account labels to run, {skipped label: the missing key}) for providers or labels."""
    run, skipped = [], {}
    for label in [item for name in requested for item in ([name] if "." in name else labels([name]))]:
        if is_configured(label):
            run.append(label)
        else:
            skipped[label] = env_name(label, "api_key")
    return run, skipped
