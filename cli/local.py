"""Local commands: ``train`` (one schedule on this machine), ``schedules`` (families and presets), ``tasks``
(the tasks installed here, with their options), ``check`` (the theory check of a spec).

``train`` builds a ``TrialSpec`` from, in order, a base (a spec file, ``--paper-config FILE`` or
``--preset NAME``; else the default below) and then the flags, which override single fields:

    schedsearch train                                   # digits-mlp, NSHB, b=128, lr=0.1, 30 epochs
    schedsearch train spec.yaml --epochs 10 --json out.json
    schedsearch train --batch '{"family": "exp_growth", "b0": 8, "factor": 2, "interval": 3}' --lr0 0.1
    schedsearch train --preset <name> --task digits-mlp --epochs 30

torch is imported inside the command functions only, so ``schedsearch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_SPEC: dict[str, Any] = {
    "task": {"name": "digits-mlp", "options": {}},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "schedule": {
        "batch_size": {"family": "constant", "b0": 128},
        "lr": {"family": "constant", "lr0": 0.1},
    },
    "budget": {"max_epochs": 30, "max_sfo": None},
    "target": {"grad_norm": None, "stop_at_target": False},
    "seed": 0,
    "grad_norm_mode": "clean",
}


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one schedule locally and print per-epoch metrics",
        description="Train one schedule on this machine: progress bar on stderr, per-epoch table, summary.",
    )
    train.add_argument("spec", nargs="?", help="trial spec file (JSON or YAML); a bare schedule also works")
    base = train.add_mutually_exclusive_group()
    base.add_argument("--paper-config", metavar="FILE", help="the paper's official JSON run config")
    base.add_argument("--preset", metavar="NAME", help="a paper preset (see `schedsearch schedules`)")
    train.add_argument("--task", help="task name (`schedsearch tasks` lists them)")
    train.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, value parsed as JSON when it can be (repeatable)",
    )
    train.add_argument("--optimizer", choices=["shb", "nshb", "sgd"])
    train.add_argument("--momentum", type=float)
    train.add_argument(
        "--batch", metavar="JSON", help='batch-size family, e.g. \'{"family": "constant", "b0": 64}\''
    )
    train.add_argument("--batch-size", type=int, help="shorthand for a constant batch size")
    train.add_argument("--lr", metavar="JSON", help='LR family, e.g. \'{"family": "cosine", "lr0": 0.1}\'')
    train.add_argument("--lr0", type=float, help="shorthand for a constant LR (or the lr0 of --lr's family)")
    train.add_argument("--epochs", type=int, help="budget.max_epochs")
    train.add_argument("--max-sfo", type=int, help="budget.max_sfo (never exceeded)")
    train.add_argument("--target", type=float, help="target.grad_norm (unsquared)")
    train.add_argument("--stop-at-target", action="store_true", help="stop once the target is reached")
    train.add_argument("--seed", type=int)
    train.add_argument("--grad-norm-mode", choices=["clean", "faithful"])
    train.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    train.add_argument("--json", metavar="OUT", help="write the result (spec, records, summary) as JSON")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--print-spec", action="store_true", help="print the resolved spec and exit")
    train.set_defaults(handler=cmd_train)

    schedules = subparsers.add_parser(
        "schedules",
        help="list schedule families (with parameters) and presets",
        description="List the batch-size and LR families with their parameters, and the paper presets.",
    )
    schedules.add_argument("--json", action="store_true", help="print as JSON")
    schedules.set_defaults(handler=cmd_schedules)

    tasks = subparsers.add_parser(
        "tasks",
        help="list the tasks installed here, with their options",
        description="List every task installed in this environment (built-in and plugin packages, entry "
        "points 'schedsearch.tasks') with its description and options. A server lists its own at "
        "GET /v1/tasks.",
    )
    tasks.add_argument("--json", action="store_true", help="print as JSON")
    tasks.set_defaults(handler=cmd_tasks)

    check = subparsers.add_parser(
        "check",
        help="theory check of a spec: strategy, guarantee, violated conditions",
        description="Print which of the paper's strategies a spec is and which conditions it violates.",
    )
    check.add_argument("spec", help="trial spec or schedule (file path, or inline JSON)")
    check.add_argument("--n-train", type=int, help="training-set size for the plan (default: from the task)")
    check.add_argument("--epochs", type=int, help="epochs of the plan (default: the spec's budget, else 300)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=cmd_check)


# --- spec assembly ------------------------------------------------------------------------------------------


def _read_data(path_or_json: str) -> Any:
    text = path_or_json.strip()
    if text.startswith("{"):
        return _loads(text, "inline JSON")
    path = Path(path_or_json)
    if not path.is_file():
        raise CliError(f"no such file: {path_or_json}")
    content = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise CliError(f"{path_or_json} is not valid YAML: {exc}") from None
    return _loads(content, path_or_json)


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{where} is not valid JSON: {exc}") from None


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key != "schedule":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _as_spec_dict(data: Any, where: str) -> dict[str, Any]:
    """A file's content as a (partial) trial spec dict; a bare schedule {"batch_size", "lr"} is wrapped."""
    if not isinstance(data, Mapping):
        raise CliError(f"{where} must hold an object (a trial spec or a schedule)")
    if "batch_size" in data and "lr" in data and "schedule" not in data:
        return {"schedule": dict(data)}
    return dict(data)


def _paper_spec(args: argparse.Namespace) -> dict[str, Any] | None:
    if not (args.paper_config or args.preset):
        return None
    from schedules import paper

    if args.paper_config:
        config = _read_data(args.paper_config)
        if not isinstance(config, Mapping):
            raise CliError(f"{args.paper_config} must hold the paper's JSON config object")
        return _spec_json(paper.from_paper_config(config))
    presets = paper.PRESETS
    if args.preset not in presets:
        raise CliError(f"unknown preset {args.preset!r}; `schedsearch schedules` lists them")
    return _spec_json(presets[args.preset])


def _spec_json(value: Any) -> dict[str, Any]:
    to_json = getattr(value, "to_json", None)
    return dict(to_json()) if callable(to_json) else dict(value)


def _flag_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_spec_dict(args: argparse.Namespace) -> dict[str, Any]:
    """The trial spec dict: base, then file, then flags."""
    spec = copy.deepcopy(DEFAULT_SPEC)
    paper_base = _paper_spec(args)
    if paper_base is not None:
        spec = _merge(spec, paper_base)
    if args.spec:
        spec = _merge(spec, _as_spec_dict(_read_data(args.spec), args.spec))
    if args.task:
        spec["task"] = {"name": args.task, "options": {}}
    for item in args.task_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--task-option must be KEY=VALUE, got {item!r}")
        spec["task"].setdefault("options", {})[key] = _flag_value(value)
    if args.optimizer:
        spec["optimizer"]["name"] = args.optimizer
        if args.optimizer == "sgd":
            spec["optimizer"]["momentum"] = 0.0
    if args.momentum is not None:
        spec["optimizer"]["momentum"] = args.momentum
    if args.batch and args.batch_size is not None:
        raise CliError("give --batch or --batch-size, not both")
    if args.batch:
        spec["schedule"]["batch_size"] = _loads(args.batch, "--batch")
    elif args.batch_size is not None:
        spec["schedule"]["batch_size"] = {"family": "constant", "b0": args.batch_size}
    if args.lr:
        spec["schedule"]["lr"] = _loads(args.lr, "--lr")
        if args.lr0 is not None:
            spec["schedule"]["lr"]["lr0"] = args.lr0
    elif args.lr0 is not None:
        spec["schedule"]["lr"] = {"family": "constant", "lr0": args.lr0}
    if args.epochs is not None:
        spec["budget"]["max_epochs"] = args.epochs
    if args.max_sfo is not None:
        spec["budget"]["max_sfo"] = args.max_sfo
    if args.target is not None:
        spec["target"]["grad_norm"] = args.target
    if args.stop_at_target:
        spec["target"]["stop_at_target"] = True
    if args.seed is not None:
        spec["seed"] = args.seed
    if args.grad_norm_mode:
        spec["grad_norm_mode"] = args.grad_norm_mode
    return spec


# --- train ------------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from schedules.spec import SpecError, TrialSpec

    err = Console(stderr=True)
    try:
        spec = TrialSpec.from_json(build_spec_dict(args))
    except (CliError, SpecError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    if args.print_spec:
        print(json.dumps(spec.to_json(), indent=2))
        return 0

    from schedules.trainer import train

    out = _stdout_console()
    epochs = spec.budget.max_epochs
    with _progress(err, epochs, disabled=args.no_progress) as advance:
        try:
            result = train(spec, report=advance, device=args.device)
        except ValueError as exc:  # a task that cannot load (unknown name, bad option, missing data)
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            return 2
    print_records(out, result.records)
    print_summary(out, result.summary.to_json(), device=result.device, mode=spec.grad_norm_mode)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2) + "\n")
        err.print(f"wrote {args.json}", highlight=False)
    return 0


def _stdout_console() -> Any:
    from rich.console import Console

    # Piped output (a file, a test) gets a wide table rather than rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(file=sys.stdout, width=160)


class _progress:
    """A rich progress bar over epochs, on stderr; calling it advances by one record."""

    def __init__(self, console: Any, epochs: int, *, disabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=disabled,
            transient=False,
        )
        self._task = self._bar.add_task("", total=epochs)

    def __enter__(self) -> _progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, record: Any) -> None:
        self._bar.update(
            self._task,
            completed=record.epoch,
            description=f"|grad f|={record.grad_norm:.4g}  loss={record.full_loss:.4g}  sfo={record.sfo:,}",
        )


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_records(console: Any, records: Any) -> None:
    """The per-epoch table, laid out for the console's width: at 80 columns the SFO curve (epoch, sfo,
    batch, lr, |grad f|) and what fits of the rest."""
    from cli.layout import Column, fit_table

    subset = next((r.grad_norm_subset for r in records if r.grad_norm_subset), None)
    # an estimate on a fixed subset is never shown as the exact norm
    grad_name = f"grad norm (est., {subset:,} examples)" if subset else "grad norm"
    columns = [
        Column(name, priority=priority, justify="right")
        for name, priority in (
            ("epoch", 0),
            ("step", 6),
            ("sfo", 0),
            ("batch", 1),
            ("lr", 2),
            ("train loss", 5),
            ("f(theta)", 4),
            (grad_name, 0),
            ("test loss", 7),
            ("test acc", 3),
            ("wall s", 8),
        )
    ]
    rows = []
    for r in records:
        d = r.to_json()
        rows.append(
            (
                str(d["epoch"]),
                _fmt(d["step"]),
                _fmt(d["sfo"]),
                _fmt(d["batch_size"]),
                _fmt(d["lr"]),
                _fmt(d["train_loss"]),
                _fmt(d["full_loss"]),
                _fmt(d["grad_norm"]),
                _fmt(d["test_loss"]),
                _fmt(d["test_acc"], 3),
                f"{d['wall_s']:.2f}",
            )
        )
    table = fit_table(console.width, columns, rows, title="per-epoch metrics")
    table.title_justify = "left"
    console.print(table)


def print_summary(console: Any, summary: Mapping[str, Any], *, device: str, mode: str) -> None:
    from rich.table import Table

    table = Table(title="summary", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, _fmt(value))
    table.add_row("device", device)
    table.add_row("grad_norm_mode", mode)
    console.print(table)


# --- schedules --------------------------------------------------------------------------------------------


def family_params(cls: type) -> list[dict[str, Any]]:
    import dataclasses

    out = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append({"name": f.name, "required": required, "default": None if required else f.default})
    return out


def cmd_schedules(args: argparse.Namespace) -> int:
    from schedules.spec import BATCH_FAMILIES, LR_FAMILIES

    families = {
        "batch_size": {name: family_params(cls) for name, cls in BATCH_FAMILIES.items()},
        "lr": {name: family_params(cls) for name, cls in LR_FAMILIES.items()},
    }
    presets = _preset_table()
    if args.json:
        print(json.dumps({"families": families, "presets": presets}, indent=2, default=str))
        return 0
    from rich.table import Table

    console = _stdout_console()
    for kind, entries in families.items():
        table = Table(title=f"{kind} families", title_justify="left")
        table.add_column("family")
        table.add_column("parameters (default)")
        for name, params in entries.items():
            text = ", ".join(p["name"] if p["required"] else f"{p['name']}={p['default']}" for p in params)
            table.add_row(name, text)
        console.print(table)
    table = Table(title=f"presets ({len(presets)})", title_justify="left")
    table.add_column("name")
    table.add_column("schedule")
    for row in presets:
        table.add_row(row["name"], row["schedule"])
    console.print(table)
    return 0


def _preset_table() -> list[dict[str, str]]:
    from schedules import paper

    rows = []
    for name, value in paper.PRESETS.items():
        d = _spec_json(value)
        schedule = d.get("schedule", d)
        rows.append({"name": name, "schedule": _schedule_text(schedule)})
    return rows


def _schedule_text(schedule: Mapping[str, Any]) -> str:
    def part(d: Mapping[str, Any]) -> str:
        params = ", ".join(f"{k}={v}" for k, v in d.items() if k != "family" and v is not None)
        return f"{d.get('family')}({params})"

    return f"batch {part(schedule['batch_size'])}; lr {part(schedule['lr'])}"


# --- tasks ------------------------------------------------------------------------------------------------


def _option_text(option: Mapping[str, Any]) -> str:
    text = f"{option['name']}={json.dumps(option['default'])}"
    if option["choices"] is not None:
        text += f" ({'|'.join(str(c) for c in option['choices'])})"
    elif option["minimum"] is not None or option["maximum"] is not None:
        lo = "" if option["minimum"] is None else _fmt(option["minimum"])
        hi = "" if option["maximum"] is None else _fmt(option["maximum"])
        text += f" [{lo}..{hi}]"
    return text


def cmd_tasks(args: argparse.Namespace) -> int:
    from schedules.tasks import catalogue

    installed = catalogue()
    data = [d.to_json() for d in installed.tasks.values()]
    broken = [b.to_json() for b in installed.broken.values()]
    if args.json:
        print(json.dumps({"data": data, "count": len(data), "broken": broken}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tasks ({len(data)})", title_justify="left", show_lines=True)
    table.add_column("task")
    table.add_column("description")
    table.add_column("options (default)")
    for task in data:
        name = task["name"] + ("\n(needs the data root)" if task["needs_data_root"] else "")
        table.add_row(name, task["description"], "\n".join(_option_text(o) for o in task["options"]))
    _stdout_console().print(table)
    err = Console(stderr=True)
    for item in broken:
        package = item["package"] or "an unknown package"
        err.print(
            f"[yellow]unavailable:[/yellow] task {item['name']!r} from {package}: {item['error']}",
            highlight=False,
            markup=True,
        )
    return 0


# --- check ------------------------------------------------------------------------------------------------


def _task_n_train(task: Any) -> int | None:
    """n of the spec's task from its definition (None: no task given, or n is known only once loaded)."""
    if task is None:
        return None
    if not isinstance(task, Mapping):
        raise CliError("task must be an object with a name and options")
    from schedules.tasks import get_definition

    return get_definition(task.get("name")).training_size(task.get("options") or {})


def cmd_check(args: argparse.Namespace) -> int:
    from schedules.spec import Schedule, SpecError
    from schedules.theory import check

    try:
        data = _as_spec_dict(_read_data(args.spec), args.spec)
        schedule = Schedule.from_json(data.get("schedule", {}))
    except (CliError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    optimizer = data.get("optimizer", {})
    name = optimizer.get("name", "nshb")
    momentum = optimizer.get("momentum", 0.0 if name == "sgd" else 0.9)
    try:
        n_train = args.n_train or _task_n_train(data.get("task"))
    except (CliError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    epochs = args.epochs or data.get("budget", {}).get("max_epochs")
    report = check(schedule, optimizer=name, momentum=momentum, max_epochs=epochs, n_train=n_train)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    verdict = "guaranteed" if report.converges_guaranteed else "NOT guaranteed"
    print(f"strategy:     {report.strategy_name}")
    print(f"optimizer:    {name} (momentum {momentum})")
    print(f"gamma, delta: {_fmt(report.gamma)}, {_fmt(report.delta)}")
    print(f"convergence of the full gradient norm: {verdict}")
    for finding in report.violations:
        print(f"  violation [{finding.code}]: {finding.message}")
    for finding in report.warnings:
        print(f"  warning   [{finding.code}]: {finding.message}")
    for note in report.notes:
        print(f"  note: {note}")
    return 0
