"""Runnable entry points: the CLI (`python -m pipelines`), nightly and backfill loads, the
model runner and the checks."""
