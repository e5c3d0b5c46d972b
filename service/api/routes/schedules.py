"""The theory check for one schedule, without running anything."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from service.api.deps import CurrentUser
from service.api.examples import CHECK_EXAMPLES
from service.api.openapi import TOO_LARGE
from service.api.schemas import ScheduleCheckRequest
from service.api.strict import StrictJSONRoute
from service.errors import spec_errors_at

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=StrictJSONRoute)


@router.post("/check", responses=TOO_LARGE)
def check_schedule(
    body: Annotated[ScheduleCheckRequest, Body(openapi_examples=CHECK_EXAMPLES)], user: CurrentUser
) -> dict[str, Any]:
    """Which of the paper's strategies the schedule is, whether convergence is guaranteed, and which
    conditions it violates (gamma^2 < delta, beta^2 gamma < 1, LR capped)."""
    from schedules.plancheck import check_plans
    from schedules.spec import Horizon, Schedule
    from schedules.theory import DEFAULT_N_TRAIN, check

    with spec_errors_at("schedule"):  # a 422 located under body.schedule (service.api.errors)
        schedule = Schedule.from_json(body.schedule)
        # As for a job: every batch size and LR over the budget must be finite and positive before the
        # theory check computes with them (growth that overflows was a 500 here).
        check_plans(schedule, Horizon(epochs=body.max_epochs, n_train=body.n_train or DEFAULT_N_TRAIN))
    report = check(
        schedule,
        optimizer=body.optimizer,
        momentum=body.momentum,
        max_epochs=body.max_epochs,
        n_train=body.n_train,
    )
    result: dict[str, Any] = report.to_json()
    return result
