"""What a task *is* before anything is loaded: its name, options schema, training-set size and loader.

Torch-free (the API validates jobs with it). One ``TaskDefinition`` per task, built-in or third-party, found
through the entry-point group ``schedsearch.tasks`` (``schedules.tasks.registry``). Everything the service
and the command line know about a task comes from here: there is no second copy of its options or sizes.

- ``Option``: one option's name, type, default, bounds or choices, whether null is allowed, description;
- ``TaskDefinition.validate(options)``: the options with defaults filled in, or a ``SpecError`` whose field
  is ``task.options.<name>`` and whose message names the value and what is valid;
- ``TaskDefinition.n_train(options)``: the number of training examples n that SFO and the batch plan use,
  without loading data, or None where the size is only known once the data is read;
- ``TaskDefinition.loader``: ``"module:function"``, imported only when a trial loads the task. The function
  takes ``(options, device)`` (validated options, a ``torch.device``) and returns a
  ``schedules.tasks.runtime.Task``.

Paths in options are confined to the data root: an option of type ``path`` is relative and may not contain
``..`` (a job must not choose arbitrary server paths); the data-root option (``DATA_ROOT_OPTION``, added to
every definition with ``needs_data_root=True``) may be absolute and must then lie inside the configured root,
which the service checks against its settings and the workers against ``SCHEDSEARCH_DATA_ROOT``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from schedules.families._base import SpecError

OptionType = Literal["int", "float", "bool", "str", "path"]
OPTION_TYPES: tuple[str, ...] = ("int", "float", "bool", "str", "path")
DATA_ROOT_ENV = "SCHEDSEARCH_DATA_ROOT"

_KIND = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "path": "a path",
}


def path_problem(value: str, *, absolute_ok: bool) -> str | None:
    """Why ``value`` may not name a path under the data root, or None when it may (syntax only: whether an
    absolute path lies inside the root depends on the machine's root, checked where it is known)."""
    if "\x00" in value or not value.strip():
        return "must be a non-empty path without NUL characters"
    parts = value.replace("\\", "/").split("/")
    if ".." in parts:
        return "must not contain '..'"
    if not absolute_ok and (value.startswith(("/", "\\", "~")) or ":" in parts[0]):
        return "must be a path relative to the data root"
    return None


def resolve_data_path(options: Mapping[str, Any], relative: str, *, what: str = "folder") -> Path:
    """Where a task reads ``relative`` (a ``path`` option's value) on this machine: under the options'
    ``data_root`` or else ``SCHEDSEARCH_DATA_ROOT``. Raises ``SpecError`` naming the option when no root is
    set, when an explicit ``data_root`` lies outside ``SCHEDSEARCH_DATA_ROOT``, or when the path would leave
    the root (symbolic links included: paths are compared after resolving them)."""
    env_root = os.environ.get(DATA_ROOT_ENV)
    explicit = options.get("data_root")
    root_text = explicit or env_root
    if not root_text:
        raise SpecError(
            "task.options.data_root",
            explicit,
            f"must be set, or {DATA_ROOT_ENV} on this machine: the folder that holds the task's data",
        )
    root = Path(root_text).resolve()
    if explicit and env_root and not root.is_relative_to(Path(env_root).resolve()):
        raise SpecError("task.options.data_root", explicit, f"must lie inside {DATA_ROOT_ENV}")
    path = (root / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(root):
        raise SpecError(f"task.options.{what}", relative, "must stay inside the data root")
    return path


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True)
class Option:
    """One task option. ``minimum`` / ``maximum`` are inclusive bounds of ``int`` and ``float`` options;
    ``choices`` lists the allowed values; ``nullable`` allows JSON null (None), whose meaning the
    description gives. ``absolute_ok`` is for ``path`` options only: the path may be absolute (it must then
    lie inside the data root; see the module docstring)."""

    name: str
    type: OptionType
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    absolute_ok: bool = False

    def __post_init__(self) -> None:
        if self.type not in OPTION_TYPES:
            raise ValueError(f"Option.type must be one of {', '.join(OPTION_TYPES)}, got {self.type=}")
        if not self.name.isidentifier():
            raise ValueError(f"Option.name must be an identifier, got {self.name=}")
        if self.default is None and not self.nullable:
            raise ValueError(f"Option {self.name!r} has default None, so it must be nullable")
        if self.default is not None:
            self.check(self.default, task="(definition)")  # a definition whose default is invalid is a bug

    @property
    def requirement(self) -> str:
        """What a valid value is, in words (the end of every error message about this option)."""
        text = _KIND[self.type]
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.minimum is not None and self.maximum is not None:
            text += f" in [{_number(self.minimum)}, {_number(self.maximum)}]"
        elif self.minimum is not None:
            text += f" >= {_number(self.minimum)}"
        elif self.maximum is not None:
            text += f" <= {_number(self.maximum)}"
        if self.type == "path":
            text += (
                " (absolute inside the data root, or relative to it)"
                if self.absolute_ok
                else (" relative to the data root")
            )
        return text + (" or null" if self.nullable else "")

    def check(self, value: Any, *, task: str) -> Any:
        """``value`` if valid (an integral float such as 30.0 becomes 30 for ``int``), else a SpecError."""
        where = f"task.options.{self.name}"
        need = f"must be {self.requirement} for task {task}"
        if value is None:
            if self.nullable:
                return None
            raise SpecError(where, value, need)
        if self.type == "int":
            integral = isinstance(value, float) and math.isfinite(value) and value.is_integer()
            if isinstance(value, bool) or not (isinstance(value, int) or integral):
                raise SpecError(where, value, need)
            value = int(value)
        elif self.type == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise SpecError(where, value, need)
            value = float(value)
        elif self.type == "bool":
            if not isinstance(value, bool):
                raise SpecError(where, value, need)
        elif not isinstance(value, str):
            raise SpecError(where, value, need)
        elif self.type == "path":
            problem = path_problem(value, absolute_ok=self.absolute_ok)
            if problem:
                raise SpecError(where, value, f"{problem} (task {task} reads its data under the data root)")
        if self.choices is not None and value not in self.choices:
            raise SpecError(where, value, need)
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise SpecError(where, value, need)
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices) if self.choices is not None else None,
            "nullable": self.nullable,
            "description": self.description,
        }


#: Added to every definition with ``needs_data_root=True``.
DATA_ROOT_OPTION = Option(
    "data_root",
    "path",
    None,
    f"Folder the task's data paths are relative to; null: the workers' {DATA_ROOT_ENV}. An explicit one must "
    "lie inside that root (the service refuses it when the server has no data root).",
    nullable=True,
    absolute_ok=True,
)

#: Options of the streamed path that any task may declare (the built-in tasks do); the loader passes them on
#: to ``schedules.tasks.runtime.DatasetData`` and ``Task``.
STREAM_OPTION = Option(
    "stream",
    "bool",
    False,
    "Read the training set through a DataLoader whose batch sampler follows the batch plan, instead of "
    "keeping it on the device (for data that does not fit; same seed, same batches).",
)
NUM_WORKERS_OPTION = Option(
    "num_workers",
    "int",
    0,
    "DataLoader worker processes of the streamed path (0: read in the training process).",
    minimum=0,
    maximum=64,
)
GRAD_NORM_SUBSET_OPTION = Option(
    "grad_norm_subset",
    "int",
    None,
    "Measure the full gradient norm on a fixed, seeded subset of this many training examples (an estimate, "
    "marked as such in every record); null: exactly, over the whole training set.",
    minimum=1,
    nullable=True,
)


class TaskUnavailable(SpecError):
    """A task that is named but cannot be used in this process: not installed here, or its plugin is
    broken. One sentence naming the task, why, and (through ``reason``) what to do; field ``task.name``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__("task.name", name, f"names a task that cannot be used here: {reason}")


def _no_check(options: Mapping[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class TaskDefinition:
    """A task as the catalogue, the job spec and the command line see it. Torch-free.

    ``n_train(options)`` receives validated options (defaults filled) and must not load data; it returns
    None only when the size is known once the data is read (the trainer then uses the loaded size, and the
    service says what it cannot check). ``check(options)`` is an optional cross-option rule that raises
    ``SpecError`` naming ``task.options.<name>``. ``needs_data_root`` marks tasks that read files under the
    data root: the service refuses them when it has none, and ``DATA_ROOT_OPTION`` is added to the options.
    ``package`` is filled in by the registry (the distribution that declared the entry point).
    """

    name: str
    description: str
    loader: str
    options: tuple[Option, ...] = ()
    n_train: Callable[[Mapping[str, Any]], int | None] = field(default=lambda _options: None, repr=False)
    needs_data_root: bool = False
    check: Callable[[Mapping[str, Any]], None] = field(default=_no_check, repr=False)
    package: str | None = None

    def __post_init__(self) -> None:
        module, sep, attr = self.loader.partition(":")
        if not (sep and module and attr):
            raise ValueError(f"TaskDefinition.loader must be 'module:function', got {self.loader=}")
        if not self.description or "\n" in self.description:
            raise ValueError(f"TaskDefinition.description must be one line, got {self.description=}")
        options = tuple(self.options)
        if self.needs_data_root and all(o.name != DATA_ROOT_OPTION.name for o in options):
            options = (DATA_ROOT_OPTION, *options)
        names = [o.name for o in options]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r} declares an option twice: {names}")
        object.__setattr__(self, "options", options)

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def validate(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """The options with defaults filled in; raises ``SpecError`` (field ``task.options.<name>``)."""
        given = {} if options is None else options
        if not isinstance(given, Mapping):
            raise SpecError("task.options", given, f"must be an object (the options of task {self.name})")
        by_name = {o.name: o for o in self.options}
        for key in given:
            if key not in by_name:
                valid = ", ".join(self.option_names) or "(none)"
                raise SpecError(
                    f"task.options.{key}",
                    given[key],
                    f"is not an option of task {self.name} (valid: {valid})",
                )
        out = {
            o.name: o.check(given[o.name], task=self.name) if o.name in given else o.default
            for o in self.options
        }
        self.check(out)
        return out

    def training_size(self, options: Mapping[str, Any] | None) -> int | None:
        """n for these options (validated first), or None when it is known only once the data is read."""
        n = self.n_train(self.validate(options))
        return None if n is None else int(n)

    def resolve_loader(self) -> Callable[..., Any]:
        """The loader function, imported now. A plugin whose module cannot be imported (a missing
        dependency, a typo in the entry point) is a ``TaskUnavailable`` naming the task and its package."""
        import importlib

        module_name, _, attr = self.loader.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise TaskUnavailable(
                self.name,
                f"the loader {self.loader!r}{self._from()} cannot be imported ({type(exc).__name__}: {exc})",
            ) from None
        if not callable(target):
            raise TaskUnavailable(self.name, f"the loader {self.loader!r}{self._from()} is not callable")
        return target

    def _from(self) -> str:
        return f" (package {self.package})" if self.package else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "package": self.package,
            "needs_data_root": self.needs_data_root,
            "options": [o.to_json() for o in self.options],
        }
