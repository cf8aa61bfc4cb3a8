"""The unattended nights of tests/test_soak.py, on the Postgres server (a shorter month)."""

from __future__ import annotations

from tests.test_soak import POSTGRES_NIGHTS, Month, sims, soak  # noqa: F401 - sims is a fixture


def test_a_month_of_nights_ends_equal_to_the_truth_on_postgres(postgres_url, monkeypatch, sims, record_property):
    soak("postgres", monkeypatch, sims, record_property, Month(POSTGRES_NIGHTS))
