"""JSON schemas (OpenAPI 3.1 components) of a job's ``task``, generated from the one definition of each task
(``TaskDefinition`` and its ``Option``s, ``schedules.tasks.definition``). Torch-free and pure.

``components(definitions)`` returns name -> schema, references pointing at ``#/components/schemas/<name>``:

| component | what |
|---|---|
| ``DigitsMlpTask``, ... (``task_component_name``) | one task: ``name`` (a constant) and its ``options`` |
| ``Task`` | a discriminated union of them on ``name`` |

Each option's schema has its type, default, bounds, choices, whether null is allowed, and its description.
What a schema cannot hold is in the description and checked by the definition when a job is submitted: a
path option's rules (relative to the data root, no ``..``), a task's cross-option rule (``check``), and
whether this server can run the task (a task that reads a data root needs one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from schedules.tasks.definition import Option, TaskDefinition

PREFIX = "#/components/schemas/"
UNION = "Task"
_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "path": "string"}


def task_component_name(name: str) -> str:
    """``digits-mlp`` -> ``DigitsMlpTask``: the task name's words, capitalised, and ``Task``."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    return "".join(w[:1].upper() + w[1:] for w in words) + "Task"


def _bound(option: Option, value: float) -> float | int:
    return int(value) if option.type == "int" else float(value)


def option_schema(option: Option) -> dict[str, Any]:
    """One option: its JSON type, range or choices, null when allowed, default and description."""
    value: dict[str, Any] = {"type": _TYPES[option.type]}
    if option.choices is not None:
        value["enum"] = list(option.choices)
    if option.minimum is not None:
        value["minimum"] = _bound(option, option.minimum)
    if option.maximum is not None:
        value["maximum"] = _bound(option, option.maximum)
    if option.type == "path":
        value["minLength"] = 1
    schema = {"anyOf": [value, {"type": "null"}]} if option.nullable else value
    description = option.description
    if option.type == "path":  # what the pattern of a path would be, in words
        description += f" Must be {option.requirement}, without '..'."
    return {**schema, "default": option.default, "description": description}


def task_schema(definition: TaskDefinition) -> dict[str, Any]:
    """One task as a job names it: ``{"name": <the task>, "options": {...}}``, unknown options refused."""
    options = {o.name: option_schema(o) for o in definition.options}
    description = definition.description
    if definition.needs_data_root:
        description += " (reads its data under the server's data root: refused on a server without one)"
    return {
        "type": "object",
        "title": task_component_name(definition.name),
        "description": description,
        "properties": {
            "name": {"const": definition.name, "type": "string"},
            "options": {
                "type": "object",
                "properties": options,
                "additionalProperties": False,
                "default": {},
                "description": f"Options of task {definition.name}; left out, an option takes its default.",
            },
        },
        "required": ["name"],
        "additionalProperties": False,
    }


def components(definitions: Iterable[TaskDefinition]) -> dict[str, dict[str, Any]]:
    """A component per task and their union ``Task`` (see the module docstring). With no task installed,
    ``Task`` is any ``{name, options}`` (every name is then refused on submission, with the reason)."""
    out: dict[str, dict[str, Any]] = {}
    mapping: dict[str, str] = {}
    for definition in definitions:
        base = name = task_component_name(definition.name)
        while name in out or name == UNION:  # "a-b" and "a_b" give the same words: number the second
            name = f"{base}{len(out) + 1}"
        out[name] = task_schema(definition)
        mapping[definition.name] = PREFIX + name
    union: dict[str, Any] = {
        "description": "A task from GET /v1/tasks and its options, chosen by name.",
    }
    if mapping:
        union |= {
            "oneOf": [{"$ref": target} for target in mapping.values()],
            "discriminator": {"propertyName": "name", "mapping": mapping},
        }
    else:
        union |= {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1}, "options": {"type": "object"}},
            "required": ["name"],
        }
    out[UNION] = union
    return out
