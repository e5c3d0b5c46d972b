"""The task catalogue: every ``TaskDefinition`` installed in this Python environment. Torch-free.

Tasks are found through the entry-point group ``schedsearch.tasks`` (``importlib.metadata``), as pytest and
Optuna find their plugins; the built-in tasks register through the same group in ``pyproject.toml``, so
there is one path. An entry point's name is the task name and its value a ``TaskDefinition`` object in a
torch-free module, e.g.::

    [project.entry-points."schedsearch.tasks"]
    wine-mlp = "schedsearch_wine.definition:WINE_MLP"

The catalogue is read once per process (``catalogue()``; ``reload()`` reads it again). A broken entry point
(its module does not import, its value is not a ``TaskDefinition``, its name differs from the definition's,
or two packages declare the same name) does not break the others: it is kept apart in ``broken`` with the
package that declared it and the reason, logged once, and naming it in a job is a ``TaskUnavailable``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from schedules.families._base import SpecError
from schedules.tasks.definition import TaskDefinition, TaskUnavailable

ENTRY_POINT_GROUP = "schedsearch.tasks"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokenTask:
    """An entry point that could not be turned into a task: its name, declaring package and why."""

    name: str
    package: str | None
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "package": self.package, "error": self.error}


@dataclass(frozen=True)
class Catalogue:
    """Installed tasks by name (sorted), and the entry points that failed."""

    tasks: Mapping[str, TaskDefinition]
    broken: Mapping[str, BrokenTask]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.tasks)

    def get(self, name: Any) -> TaskDefinition:
        """The definition of ``name``; an unknown name is a ``SpecError`` on ``task.name`` listing the
        installed tasks, a broken one a ``TaskUnavailable`` saying why."""
        if isinstance(name, str) and name in self.tasks:
            return self.tasks[name]
        if isinstance(name, str) and name in self.broken:
            broken = self.broken[name]
            package = f" (package {broken.package})" if broken.package else ""
            raise TaskUnavailable(name, f"its plugin{package} is broken: {broken.error}")
        valid = ", ".join(self.tasks) or "(no task is installed)"
        raise SpecError("task.name", name, f"must be one of {valid}")

    def require(self, name: str, *, where: str) -> TaskDefinition:
        """``get`` for a process that runs what another one accepted (the API knew the task, this machine may
        not): an unknown name is a ``TaskUnavailable`` saying it is not installed ``where`` and what is."""
        if name in self.tasks or name in self.broken:
            return self.get(name)
        installed = ", ".join(self.tasks) or "none"
        raise TaskUnavailable(
            name,
            f"task {name!r} is not installed {where} (installed there: {installed}); install the package "
            "that provides it in that image",
        )


def _package(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else None


def discover(points: Iterable[EntryPoint] | None = None) -> Catalogue:
    """Read the entry points (``points`` for tests; default: the group in this environment)."""
    found: dict[str, TaskDefinition] = {}
    broken: dict[str, BrokenTask] = {}
    for ep in points if points is not None else entry_points(group=ENTRY_POINT_GROUP):
        package = _package(ep)
        try:
            value = ep.load()
        except Exception as exc:  # any import-time failure of a plugin: keep it apart, name it
            broken[ep.name] = BrokenTask(
                ep.name, package, f"{ep.value!r} does not load ({type(exc).__name__}: {exc})"
            )
            continue
        if not isinstance(value, TaskDefinition):
            kind = type(value).__name__
            broken[ep.name] = BrokenTask(ep.name, package, f"{ep.value!r} is a {kind}, not a TaskDefinition")
            continue
        if value.name != ep.name:
            broken[ep.name] = BrokenTask(
                ep.name, package, f"the entry point is named {ep.name!r} but its definition {value.name!r}"
            )
            continue
        if ep.name in found or ep.name in broken:
            first = found[ep.name].package if ep.name in found else broken[ep.name].package
            found.pop(ep.name, None)
            broken[ep.name] = BrokenTask(
                ep.name, package, f"two packages declare it ({first} and {package}); uninstall one"
            )
            continue
        found[ep.name] = replace(value, package=package)
    for item in broken.values():
        logger.warning("task %r from %s is unavailable: %s", item.name, item.package or "?", item.error)
    return Catalogue(tasks=dict(sorted(found.items())), broken=dict(sorted(broken.items())))


@functools.lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The installed tasks, read once per process."""
    return discover()


def reload() -> Catalogue:
    """Read the entry points again (after installing a plugin into the running environment)."""
    catalogue.cache_clear()
    return catalogue()


def get_definition(name: Any) -> TaskDefinition:
    """``catalogue().get(name)``."""
    return catalogue().get(name)
