"""`python -m pipelines bench`: the benchmark lives in `bench/` (`bench/harness.py` runs it,
`bench/minimum.py` holds the fewest-requests maths, `bench/baseline.py` the bare loader); this
module only keeps the command's entry point where `pipelines/__main__.py` looks for it."""

from bench.harness import main

__all__ = ["main"]
