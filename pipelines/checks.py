"""Data checks on the warehouse: every expected day present (raw and facts), and the model tests."""

from __future__ import annotations

from typing import List, Sequence

from pipelines import completeness, models, warehouse
from pipelines.config import Destination


NOT_BUILT = "analytics.fct_daily_usage does not exist yet; run `make nightly` or `make models`"


def run_checks(dest: Destination, providers: Sequence[str]) -> List[str]:
    """Every failing check as one line; empty when the warehouse is healthy: completeness,
    then every model test over the whole of each table."""
    problems = completeness_problems(dest, providers)
    return problems if problems == [NOT_BUILT] else problems + models.test_all(dest)


def completeness_problems(dest: Destination, providers: Sequence[str]) -> List[str]:
    """Completeness (refreshing `analytics.usage_completeness`): every day of every provider
    account since its start through yesterday was read from the API and built into the facts;
    one line per account with missing days (`NOT_BUILT` alone before the first build)."""
    accounts, oldest = completeness.expectations(providers)
    with warehouse.sql_client(dest) as client:
        if f"{models.SCHEMA}.fct_daily_usage" not in warehouse.existing_tables(client):
            return [NOT_BUILT]
        missing = completeness.refresh(client, accounts)
    never = [f"completeness: {a.provider} has never been loaded into this warehouse; run `make nightly`"
             for a in missing if a.start is None]
    return never + completeness.problems(missing, oldest)


def model_tests(dest: Destination) -> List[str]:
    """Each built model's own tests (its grain unique and not null, its keys, sane
    quantities), one line per failing test; `run_checks` runs them with the checks across
    models (`models.test_all`)."""
    with warehouse.sql_client(dest) as client:
        tables = warehouse.existing_tables(client)
        return [f"{model.name}: {failure}" for model in models.discover() if model.relation in tables
                for failure in models.run_tests(client, model)]


def reconciliation(dest: Destination) -> List[str]:
    """The checks across models (`sql/checks/`: a Rafay profile against its instances, ...)."""
    with warehouse.sql_client(dest) as client:
        return models.run_checks(client)


def run_warnings(dest: Destination) -> List[str]:
    """What `check` reports without failing: usage rows without a price or an exchange rate."""
    from pipelines import pricing

    return pricing.warnings(dest)


def new_anomalies(dest: Destination) -> List[str]:
    """Usage anomalies not reported before (analytics.usage_anomalies), one line each; each is
    said once, by `check` or by the nightly's alert, whichever comes first."""
    from pipelines import alerts

    return [anomaly.text() for anomaly in alerts.new_anomalies(dest)]
