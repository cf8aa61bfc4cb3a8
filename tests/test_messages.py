"""Messages that name the cause: what the API sent that could not be loaded, in one line that
is never cut inside a word, without dlt's wrapping around it."""

from __future__ import annotations

import re

import pytest

from simulators.base import FOREVER, Fault
from tests import test_faults
from tests.test_faults import nightly, one_line, walk

# the fault suite's fixtures: small simulators, fast retries
fast_retries, start_sim = test_faults.fast_retries, test_faults.start_sim
provider_case, simulator = test_faults.provider_case, test_faults.simulator

TOO_LARGE = {
    # provider: (the API's field, a value its raw column cannot hold, the field the message names)
    "neon": ("value", 2**70, "value"),
    "adverity": ("total_rows", 10**20, "total_rows"),
    "rafay": ("raw_usage", 10**400, "raw_usage"),
    "bronto": ("count", 2**70, "slice_count"),
}
WRAPPERS = ("PipelineStepFailed", "ResourceExtractionError", "Pipeline execution failed", "caused an exception")


def serve(field: str, value) -> Fault:
    return Fault(kind="mutate", mutate=lambda body: walk(body, lambda obj: {**obj, field: value} if field in obj else obj),
                 times=FOREVER)


def test_a_value_out_of_range_names_the_field_and_the_value(provider_case, simulator):
    field, value, named = TOO_LARGE[provider_case.name]
    simulator.inject(serve(field, value))
    result = nightly(provider_case)
    assert result.status == "failed"
    message = one_line(result.error)
    assert message.startswith(f"{provider_case.name}: "), message
    assert f"'{named}'" in message and str(value)[:30] in message, message
    assert not any(wrapper in message for wrapper in WRAPPERS), message
    assert result.days == set(), "a failed load shows no day"


@pytest.mark.parametrize("literal", [float("nan"), float("inf")])
def test_a_nan_literal_is_named_and_not_called_truncated(provider_case, simulator, literal):
    field = TOO_LARGE[provider_case.name][0]
    simulator.inject(serve(field, literal))
    result = nightly(provider_case)
    assert result.status == "failed"
    message = one_line(result.error)
    word = "NaN" if literal != literal else "Infinity"
    assert re.search(rf"malformed response body: {word} at line \d+ column \d+", message), message
    assert "truncated" not in message, message


def test_a_long_vendor_message_is_cut_between_words(provider_case, simulator):
    words = [f"reason{index:03d}" for index in range(120)]
    simulator.inject(Fault(status=400, body={"message": " ".join(words), "detail": " ".join(words),
                                             "details": " ".join(words)}, times=FOREVER))
    message = one_line(nightly(provider_case).error)
    assert "…" in message, message
    kept = message.split(": ", 2)[-1].split("…")[0].split()
    assert kept and all(word in words for word in kept), message
