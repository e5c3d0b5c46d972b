"""Tasks: (model, data) pairs a trial trains. This package's ``__init__`` is torch-free.

- ``schedules.tasks.definition``: ``TaskDefinition`` and ``Option``, what a task is before anything loads
  (options schema, ``n_train(options)``, the lazily imported loader); torch-free.
- ``schedules.tasks.registry``: the catalogue of installed tasks, read from the entry-point group
  ``schedsearch.tasks``; torch-free.
- ``schedules.tasks.builtin``: the built-in definitions (digits, synthetic, CIFAR); torch-free.
- ``schedules.tasks.runtime``: the torch contract a loader returns (``Task``, ``TensorData``,
  ``DatasetData``, ``Loss``) and ``load_task``.
- ``digits``, ``synthetic``, ``cifar``, ``models``: the built-in loaders and models (torch).

docs/tasks.md ("Bring your own model and data") describes the contract for plugin authors.
"""

from __future__ import annotations

from schedules.tasks.definition import (
    DATA_ROOT_ENV,
    Option,
    TaskDefinition,
    TaskUnavailable,
)
from schedules.tasks.registry import ENTRY_POINT_GROUP, Catalogue, catalogue, get_definition, reload

DEFAULT_TASK = "digits-mlp"

__all__ = [
    "DATA_ROOT_ENV",
    "DEFAULT_TASK",
    "ENTRY_POINT_GROUP",
    "Catalogue",
    "Option",
    "TaskDefinition",
    "TaskUnavailable",
    "catalogue",
    "get_definition",
    "reload",
]
