"""The benchmark behind `make bench`: `baseline` (the bare reference loader), `harness` (the
simulators' process, the measured runs, the report) and `minimum` (the fewest requests each
provider's API allows, and how many of them must run one after another)."""
