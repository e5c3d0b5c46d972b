"""``service/errors.py``: located problems from the job spec's checks and from a ``SpecError``."""

from __future__ import annotations

import pytest

from schedules.spec import Schedule, SpecError
from service.errors import InvalidInput, spec_errors_at


def test_a_spec_error_inside_the_block_is_located_under_its_place_in_the_body() -> None:
    bad = {
        "batch_size": {"family": "exp_growth", "b0": 8, "factor": 0.5, "interval": 3},
        "lr": {"family": "constant", "lr0": 0.1},
    }
    with pytest.raises(InvalidInput) as info, spec_errors_at("schedule"):
        Schedule.from_json(bad)
    [problem] = info.value.problems
    assert problem["loc"] == ("schedule", "batch_size", "factor")
    assert (problem["type"], problem["input"]) == ("schedule_spec", 0.5)
    assert problem["msg"].startswith("batch_size.factor must be")  # the message is the SpecError's own
    assert isinstance(info.value.__cause__, SpecError)


def test_other_errors_pass_through_the_block() -> None:
    with pytest.raises(KeyError), spec_errors_at("schedule"):
        raise KeyError("not a spec error")


def test_pydantic_details_keep_their_type_location_and_message() -> None:
    from pydantic_core import InitErrorDetails, PydanticCustomError

    details = [
        InitErrorDetails(
            type=PydanticCustomError("grid_distribution", "needs choice"), loc=("space", 0), input={}
        )
    ]
    [problem] = InvalidInput.from_details(details).problems
    assert (problem["type"], problem["loc"], problem["msg"]) == (
        "grid_distribution",
        ("space", 0),
        "needs choice",
    )


def test_invalid_input_needs_a_problem() -> None:
    with pytest.raises(ValueError, match="at least one problem"):
        InvalidInput([])
