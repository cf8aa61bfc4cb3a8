"""Alerts: after each nightly or backfill, one message to a webhook (`ALERTS__WEBHOOK_URL`,
Slack-compatible JSON `{"text": ...}`) naming what the run found: failed provider accounts (with
their one-line error), failed models or checks, missing days, new budget crossings
(`pricing.new_budget_crossings`) and new usage anomalies (`new_anomalies`).

- A run with nothing to say posts nothing, unless `ALERTS__ON_SUCCESS=true`.
- Schema drift (fields an API added or dropped, columns added to a raw table: `pipelines.drift`)
  is named per account with the tables, endpoints and fields; a drift that fails a load is named
  by that load's error.
- Sending never fails the run nor holds it long: a short timeout per attempt, a few attempts
  (connection errors, timeouts, HTTP 429 and 5xx), all within `DEADLINE_S`; a webhook that is
  down, slow or refusing is one warning line in the log, and the run's exit code is its own.
- The text passes through `sources.secrets.redact`, and the log names the webhook's host only
  (a Slack webhook's path is its secret).

Usage anomalies come from `analytics.usage_anomalies` (sql/marts/usage_anomalies.sql): each is
returned once by `new_anomalies`, remembered in `analytics.anomaly_alerts`, like budget
crossings in `analytics.budget_alerts`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import List, Optional, Sequence
from urllib.parse import urlsplit

import dlt

from sources.lines import one_line
from sources.secrets import redact

log = logging.getLogger("pipelines")

TIMEOUT_S = 2.0
"""How long one attempt waits for the webhook to connect and answer."""
ATTEMPTS = 3
BACKOFF_S = 0.5
"""The pause before the second attempt, doubled before each further one."""
DEADLINE_S = 6.0
"""The most time sending one alert may take, every attempt and pause included."""
MAX_LINES = 20
"""Lines of each kind listed in one message; the rest are counted."""

ANOMALIES = "analytics.usage_anomalies"
ANOMALY_ALERTS = "analytics.anomaly_alerts"
"""Every anomaly already returned by new_anomalies(), so that each is alerted once."""
GRAIN = ("usage_date", "provider", "account_id", "resource_type", "resource_id", "metric")
CREATE_ANOMALY_ALERTS = f"""
create table if not exists {ANOMALY_ALERTS} (
    usage_date date not null,
    provider varchar not null,
    account_id varchar not null,
    resource_type varchar not null,
    resource_id varchar not null,
    metric varchar not null,
    factor double precision,
    alerted_at timestamp not null
)
"""


# -- settings ---------------------------------------------------------------------------------------
def _setting(key: str) -> Optional[str]:
    value = dlt.config.get(f"alerts.{key}")
    if value is None:
        value = dlt.secrets.get(f"alerts.{key}")
    return None if value is None else str(value).strip()


def webhook_url() -> Optional[str]:
    """ALERTS__WEBHOOK_URL (dlt config: env var, then .dlt/secrets.toml or config.toml); None: no alerts."""
    return _setting("webhook_url") or None


def on_success() -> bool:
    """ALERTS__ON_SUCCESS=true: a run with nothing to report posts that it went well."""
    return (_setting("on_success") or "").lower() in ("1", "true", "yes", "on")


# -- usage anomalies --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anomaly:
    usage_date: dt.date
    provider: str
    account_id: str
    resource_type: str
    resource_id: str
    resource_name: Optional[str]
    metric: str
    unit: str
    quantity: float
    median: float
    factor: Optional[float]
    direction: str
    cost_impact: Optional[float]
    currency: Optional[str]

    def text(self) -> str:
        name = f" ({self.resource_name})" if self.resource_name else ""
        times = f"{self.factor:.1f}x" if self.factor is not None else "new"
        cost = (f", cost impact {self.cost_impact:+,.2f} {self.currency or ''}".rstrip()
                if self.cost_impact is not None else "")
        return (f"usage {self.direction} {self.usage_date}: {self.provider} account {self.account_id} "
                f"{self.resource_type} {self.resource_id}{name} {self.metric} {self.quantity:,.6g} {self.unit} "
                f"vs median {self.median:,.6g} ({times}){cost}")


def new_anomalies(dest) -> List[Anomaly]:
    """The rows of analytics.usage_anomalies not returned before, each remembered in
    analytics.anomaly_alerts as it is returned: an anomaly is returned once, by the first call
    after the build that found it (the caller prints or sends it)."""
    from pipelines import warehouse

    with warehouse.sql_client(dest) as client:
        if ANOMALIES not in warehouse.existing_tables(client):
            return []
        client.execute_sql(CREATE_ANOMALY_ALERTS)
        rows = client.execute_sql(
            "select a.usage_date, a.provider, a.account_id, a.resource_type, a.resource_id, a.resource_name, a.metric, "
            "a.unit, a.quantity, a.median_quantity, a.factor, a.direction, a.cost_impact, a.currency "
            f"from {ANOMALIES} a where not exists (select 1 from {ANOMALY_ALERTS} s where "
            + " and ".join(f"s.{column} = a.{column}" for column in GRAIN)
            + ") order by a.usage_date, a.provider, a.account_id, a.resource_type, a.resource_id, a.metric")
        found = [Anomaly(warehouse.as_date(day), provider, str(account), resource_type, str(resource), name, metric,
                         unit, float(quantity), float(median), None if factor is None else float(factor), direction,
                         None if impact is None else float(impact), currency)
                 for day, provider, account, resource_type, resource, name, metric, unit, quantity, median, factor,
                 direction, impact, currency in rows or []]
        if found:
            now = warehouse.utc_now()
            with client.begin_transaction():
                warehouse.insert_rows(client, ANOMALY_ALERTS, GRAIN + ("factor", "alerted_at"), [
                    (a.usage_date, a.provider, a.account_id, a.resource_type, a.resource_id, a.metric, a.factor, now)
                    for a in found])
    return found


# -- the message ------------------------------------------------------------------------------------
def _who(label: str) -> str:
    from pipelines.config import split_label

    provider, account = split_label(label)
    return f"{provider} (account {account})"


def _one_line(text: Optional[str]) -> str:
    return one_line(text or "", 400)


def _listed(kind: str, lines: Sequence[str]) -> List[str]:
    out = [f"- {kind}: {line}" for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        out.append(f"- … and {len(lines) - MAX_LINES} more {kind} line(s)")
    return out


def missing_days(dest, labels: Sequence[str]) -> List[str]:
    """One line per account of the run with missing days in analytics.usage_completeness."""
    from pipelines import completeness, warehouse
    from pipelines.config import label_of, split_label
    from sources import windows

    wanted = {split_label(label) for label in labels}
    with warehouse.sql_client(dest) as client:
        if completeness.COMPLETENESS not in warehouse.existing_tables(client):
            return []
        rows = client.execute_sql(f"select provider, account_id, usage_date from {completeness.COMPLETENESS} "
                                  "where status <> 'loaded'")
    days = {}
    for provider, account, day in rows or []:
        if (provider, account) in wanted:
            days.setdefault((provider, account), []).append(warehouse.as_date(day))
    return [f"{_who(label_of(provider, account))}: {windows.describe_days(sorted(found))}"
            for (provider, account), found in sorted(days.items())]


def run_message(report, failure: Optional[str] = None) -> Optional[str]:
    """The alert of a finished run (`failure`: why a late step ended it), or None when there is
    nothing to say and ALERTS__ON_SUCCESS is off."""
    from pipelines import pricing

    dest = report.destination
    labels = list(report.accounts or [r.provider for r in report.results])
    sections: List[str] = []
    sections += _listed("failed", [f"{_who(r.provider)}: {_one_line(r.error)}" for r in report.failed])
    if failure:
        sections += _listed("failed", [_one_line(failure)])
    sections += _listed("models", [_one_line(error) for error in report.model_errors])
    sections += _listed("schema drift", [f"{_who(r.provider)}: {_one_line(r.schema_changes)}"
                                         for r in report.results if getattr(r, "schema_changes", None)])
    sections += _listed("check", [_one_line(problem) for problem in report.problems
                                  if not problem.startswith("completeness:")])
    for what, step in (("missing days", lambda: missing_days(dest, labels)),
                       ("budget", lambda: [c.text() for c in pricing.new_budget_crossings(dest)]),
                       ("anomaly", lambda: [a.text() for a in new_anomalies(dest)])):
        try:
            sections += _listed(what, step())
        except Exception as exc:  # noqa: BLE001 - an alert names what it can; the run is not failed by it
            sections.append(f"- {what}: could not be read ({type(exc).__name__}: {_one_line(exc)[:160]})")
    bad = bool(report.failed or failure or report.model_errors or report.problems)
    if not sections and not on_success():
        return None
    code = 1 if failure else report.exit_code
    verdict = "FAILED" if bad else ("ok, with alerts" if sections else "ok")
    accounts = ", ".join(labels) or "no provider"
    head = f"usage-elt {report.command} {verdict} (exit {code}) on {dest.name} {dest.location}: {accounts}"
    return redact("\n".join([head] + sections))


# -- sending ----------------------------------------------------------------------------------------
def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    except ValueError:
        return "the webhook"


def post(url: str, text: str, timeout_s: float = TIMEOUT_S, attempts: int = ATTEMPTS,
         deadline_s: float = DEADLINE_S) -> bool:
    """POST `{"text": text}` to `url`; True once the webhook answered 2xx. Retries connection
    errors, timeouts, 429 and 5xx; gives up after `attempts` or `deadline_s`, logging one warning."""
    body = json.dumps({"text": text}).encode()
    ends = time.monotonic() + deadline_s
    pause = BACKOFF_S
    why = "no attempt made"
    for attempt in range(1, attempts + 1):
        left = ends - time.monotonic()
        if left <= 0.05:
            break
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "usage-elt"})
        try:
            with urllib.request.urlopen(request, timeout=min(timeout_s, left)) as answer:
                answer.read(1024)
            return True
        except urllib.error.HTTPError as exc:
            why = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            why = f"{type(reason).__name__}: {_one_line(reason)[:120]}" if str(reason) else type(reason).__name__
        if attempt < attempts and ends - time.monotonic() > pause + 0.05:
            time.sleep(pause)
            pause *= 2
        elif attempt < attempts:
            break
    log.warning("alert not sent to %s after %d attempt(s): %s", _host(url), attempt, redact(why))
    return False


def after_run(report, failure: Optional[str] = None) -> None:
    """Post the run's alert, if any; never raises, never fails the run."""
    try:
        url = webhook_url()
        if not url:
            return
        text = run_message(report, failure)
        if text is not None:
            post(url, text)
    except Exception as exc:  # noqa: BLE001 - an alert must never fail the run it reports
        log.warning("alert not sent: %s", redact(f"{type(exc).__name__}: {_one_line(exc)[:200]}"))
