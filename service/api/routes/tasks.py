"""The task catalogue: every task installed with the service (entry points ``schedsearch.tasks``)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import CurrentUser, SettingsDep
from service.api.schemas import OptionPublic, TaskPublic, TasksPublic
from service.api.strict import StrictJSONRoute

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=StrictJSONRoute)


@router.get("", response_model=TasksPublic)
def list_tasks(user: CurrentUser, settings: SettingsDep) -> TasksPublic:
    """Installed tasks by name, with their one-line description and options (name, type, default, bounds,
    choices, description). ``POST /v1/jobs`` validates ``task.name`` and ``task.options`` against this list;
    a task that reads its data under the data root is unavailable on a server without one."""
    from schedules.tasks import catalogue

    data = []
    for definition in catalogue().tasks.values():
        missing_root = definition.needs_data_root and settings.data_root is None
        data.append(
            TaskPublic(
                name=definition.name,
                description=definition.description,
                package=definition.package,
                needs_data_root=definition.needs_data_root,
                available=not missing_root,
                unavailable_reason="the server has no data root (SCHEDSEARCH_DATA_ROOT)"
                if missing_root
                else None,
                options=[OptionPublic(**option.to_json()) for option in definition.options],
            )
        )
    return TasksPublic(data=data, count=len(data))
