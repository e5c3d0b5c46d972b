"""The seed paper's runs in our format: an importer for its official JSON run configs, its whole run grid as
presets (paper-notes §3.2), and its four strategies scaled to a shorter budget.

Torch-free. The importer maps the config keys of ``yuichikondo09/sgdm_lr_bs_schedule`` exactly
(paper-notes §2.3, §3.1):

| paper key | ours |
|---|---|
| ``optimizer`` ("shb" / "nshb" / "sgd") or ``nshb`` (bool) | ``optimizer.name`` |
| ``init_beta`` | ``optimizer.momentum`` (default 0.9; 0 for sgd) |
| ``bs_method`` (constant / exp_growth), ``init_bs``, ``bs_growth_rate``, | ``schedule.batch_size`` |
| ``incr_interval``, ``bs_max`` | |
| ``lr_method`` (same family names), ``init_lr``, ``lr_max``, ``lr_min``, | ``schedule.lr`` |
| ``lr_growth_rate``, ``power``, ``incr_interval``, ``warmup_epochs``, ``warmup_interval`` | |
| ``epochs`` | ``budget.max_epochs`` |
| ``dataset`` (cifar10 / cifar100), ``model`` (resnet18) | ``task.name`` (``cifar10-resnet18`` ...) |

Keys that a method does not use (``lr_max`` next to ``cosine``) are ignored, as the paper's code ignores them.
Where the official code's arithmetic differs from our native families, the import reproduces the official run
(paper-notes §2.2, importer rules):

- warm-up with ``lr_growth_rate``: the official code lets the growth rate win over ``lr_max``, the LR is
  init_lr * rate^floor(e/w) during the warm-up and init_lr * rate^((W - w) // w) after it (0.1, x1.2 every 3
  epochs over 30: 0.12 at epoch 3, 0.144 at 6, 0.515978 from 27 on). That is our warm-up family with
  lr_max = init_lr * rate^((W - w)/w), exact when W is a multiple of w; other W are refused (the official
  LR then jumps back down at the end of the warm-up, which no native family does);
- batch sizes: ``rounding: "official"`` on ``exp_growth``, ceil of the float product as the official code
  computes it (b0 = 100, x1.1: 111 and 122, not 110 and 121).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schedules.spec import Schedule, SpecError, TrialSpec

PAPER_TASK = "cifar100-resnet18"
#: Not in the task registry: the paper's Tiny-ImageNet training script is not in its repository either.
TINY_IMAGENET_TASK = "tiny-imagenet-resnet18"

LR_METHODS = (
    "constant",
    "diminishing",
    "linear",
    "poly",
    "cosine",
    "exp_growth",
    "warmup_const",
    "warmup_cosine",
)
BS_METHODS = ("constant", "exp_growth")
PAPER_KEYS = (
    "optimizer",
    "nshb",
    "bs_method",
    "lr_method",
    "init_bs",
    "init_lr",
    "init_beta",
    "lr_max",
    "lr_min",
    "epochs",
    "incr_interval",
    "warmup_epochs",
    "warmup_interval",
    "bs_growth_rate",
    "lr_growth_rate",
    "power",
    "bs_max",
    "dataset",
    "model",
)
#: Keys of the paper's configs that do not change the training math (logging, naming).
IGNORED_KEYS = ("use_wandb", "wandb_project", "project", "run_name", "name", "seed")
#: The paper's ``dataset`` values we have a task for (its code trains CIFAR-100 only; the key is optional).
DATASET_TASKS = {"cifar10": "cifar10-resnet18", "cifar100": "cifar100-resnet18"}
#: The paper's ``model`` values we have (every released config uses resnet18; its code also has ResNet-34 to
#: 152 and four wide ResNets, which no task here builds).
MODELS = ("resnet18",)


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key)
    return default if value is None else value


def _required(cfg: Mapping[str, Any], key: str, why: str) -> Any:
    if cfg.get(key) is None:
        raise SpecError(key, cfg.get(key), f"is required in a paper config {why}")
    return cfg[key]


def paper_batch(cfg: Mapping[str, Any]) -> dict[str, Any]:
    method = _get(cfg, "bs_method", "constant")
    if method not in BS_METHODS:
        raise SpecError("bs_method", method, f"must be one of {', '.join(BS_METHODS)}")
    b0 = _required(cfg, "init_bs", "(the first batch size)")
    if method == "constant":
        return {"family": "constant", "b0": b0}
    return {
        "family": "exp_growth",
        "b0": b0,
        "factor": _get(cfg, "bs_growth_rate", 2.0),
        "interval": _required(cfg, "incr_interval", "for bs_method=exp_growth"),
        "b_max": cfg.get("bs_max"),
        "rounding": "official",
    }


def paper_lr(cfg: Mapping[str, Any]) -> dict[str, Any]:
    method = _get(cfg, "lr_method", "constant")
    if method not in LR_METHODS:
        raise SpecError("lr_method", method, f"must be one of {', '.join(LR_METHODS)}")
    lr0 = _required(cfg, "init_lr", "(the first learning rate)")
    if method in ("constant", "diminishing", "linear"):
        return {"family": method, "lr0": lr0}
    if method == "poly":
        return {"family": "poly", "lr0": lr0, "power": _get(cfg, "power", 2.0)}
    if method == "cosine":
        return {"family": "cosine", "lr0": lr0, "lr_min": _get(cfg, "lr_min", 0.0)}
    if method == "exp_growth":
        return {
            "family": "exp_growth",
            "lr0": lr0,
            "interval": _required(cfg, "incr_interval", "for lr_method=exp_growth"),
            "lr_max": cfg.get("lr_max"),
            "factor": cfg.get("lr_growth_rate"),
        }
    warmup, interval = _get(cfg, "warmup_epochs", 30), _get(cfg, "warmup_interval", 3)
    out = {
        "family": method,
        "lr0": lr0,
        "lr_max": _warmup_peak(cfg, method, lr0, warmup, interval),
        "warmup_epochs": warmup,
        "warmup_interval": interval,
    }
    if method == "warmup_cosine":
        out["lr_min"] = _get(cfg, "lr_min", 0.0)
    return out


def _warmup_peak(cfg: Mapping[str, Any], method: str, lr0: Any, warmup: Any, interval: Any) -> Any:
    """The warm-up's last LR. With ``lr_growth_rate`` the official code ignores ``lr_max`` and grows by the
    rate per plateau: the peak is lr0 * rate^((W - w) // w), which our warm-up reaches with that lr_max
    (its per-plateau factor (lr_max/lr0)^(w/(W - w)) is then the rate itself when w divides W)."""
    rate = cfg.get("lr_growth_rate")
    if rate is None:
        return _required(cfg, "lr_max", f"for lr_method={method} (or lr_growth_rate)")
    numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (warmup, interval))
    if not numbers or interval < 1 or warmup <= interval:
        return rate  # the family's own checks name the bad warmup_epochs / warmup_interval
    if warmup % interval:
        raise SpecError(
            "warmup_epochs",
            warmup,
            f"must be a multiple of warmup_interval={interval} when lr_growth_rate is given: the official LR "
            "then rises above its final value in the last partial plateau, which no native warm-up does",
        )
    return lr0 * rate ** ((warmup - interval) // interval)


def _task(cfg: Mapping[str, Any]) -> str:
    """``task.name`` from the optional ``dataset`` and ``model`` keys (CIFAR-100 ResNet-18 when absent)."""
    model = cfg.get("model")
    if model is not None and model not in MODELS:
        raise SpecError(
            "model",
            model,
            f"has no task here (known: {', '.join(MODELS)}, the model of every released config); choose a "
            "task instead",
        )
    dataset = cfg.get("dataset")
    if dataset is None:
        return PAPER_TASK
    key = str(dataset).lower().replace("-", "").replace("_", "")
    if key not in DATASET_TASKS:
        raise SpecError(
            "dataset", dataset, f"has no task here (known: {', '.join(DATASET_TASKS)}); choose a task instead"
        )
    return DATASET_TASKS[key]


def _optimizer(cfg: Mapping[str, Any]) -> str:
    if cfg.get("optimizer") is not None:
        name = cfg["optimizer"]
        if name not in ("shb", "nshb", "sgd"):
            raise SpecError("optimizer", name, "must be one of shb, nshb, sgd (the momentum methods we run)")
        return str(name)
    flag = cfg.get("nshb")
    if flag is None:
        raise SpecError("optimizer", None, "is required in a paper config (or nshb: true/false)")
    if not isinstance(flag, bool):
        raise SpecError("nshb", flag, "must be true (NSHB) or false (SHB)")
    return "nshb" if flag else "shb"


def from_paper_config(
    cfg: Mapping[str, Any],
    *,
    task: str | None = None,
    seed: int = 0,
    grad_norm_mode: str = "faithful",
    ignore_unknown: bool = False,
) -> TrialSpec:
    """A TrialSpec for one of the paper's JSON run configs. The gradient norm defaults to ``faithful`` mode,
    as the paper measured it. ``task`` None takes it from the config's ``dataset`` and ``model`` keys
    (``cifar100-resnet18`` without them; a model or dataset we have no task for is a SpecError); a given
    ``task`` replaces them. Unknown keys are a SpecError (a typo would silently change the run) unless
    ``ignore_unknown``; the keys in ``IGNORED_KEYS`` are always accepted."""
    if not isinstance(cfg, Mapping):
        raise SpecError("config", cfg, "must be a JSON object")
    if not ignore_unknown:
        for key in cfg:
            if key not in PAPER_KEYS and key not in IGNORED_KEYS:
                raise SpecError(
                    str(key), cfg[key], f"is not a paper config key (known: {', '.join(PAPER_KEYS)})"
                )
    name = _optimizer(cfg)
    beta = 0.0 if name == "sgd" else _get(cfg, "init_beta", 0.9)
    return TrialSpec.from_json(
        {
            "task": {"name": task if task is not None else _task(cfg), "options": {}},
            "optimizer": {"name": name, "momentum": beta},
            "schedule": {"batch_size": paper_batch(cfg), "lr": paper_lr(cfg)},
            "budget": {"max_epochs": _required(cfg, "epochs", "(the run length)"), "max_sfo": None},
            "seed": seed,
            "grad_norm_mode": grad_norm_mode,
        }
    )


# --- the run grid of paper-notes §3.2 -------------------------------------------------------------------

DECAY_METHODS = ("constant", "diminishing", "cosine", "linear", "poly")
_CONST_BS = {"bs_method": "constant", "init_bs": 128}
_INCR_BS = {"bs_method": "exp_growth", "init_bs": 8, "bs_growth_rate": 2.0, "incr_interval": 30}
_COMMON = {
    "epochs": 300,
    "incr_interval": 30,
    "power": 2.0,
    "lr_min": 0.0,
    "warmup_epochs": 30,
    "warmup_interval": 3,
}


def _beta_for(lr0: float, lr_max: float) -> float:
    # The paper's configs use 0.87 exactly where the LR grows 10x (beta^2 gamma < 1, paper-notes §2.4).
    return 0.87 if round(lr_max / lr0) == 10 else 0.9


def _growth_runs(opt: str, lr0: float, lr_max: float, methods: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        group = "iii" if method == "exp_growth" else "iv"
        out[f"paper/{opt}/{group}/{method}-{lr_max!r}"] = {
            **_COMMON,
            **_INCR_BS,
            "optimizer": opt,
            "lr_method": method,
            "init_lr": lr0,
            "lr_max": lr_max,
            "init_beta": _beta_for(lr0, lr_max),
        }
    return out


def paper_configs() -> dict[str, dict[str, Any]]:
    """The paper's run grid as paper-format configs, by preset name.

    Names: ``paper/<opt>/<group>/<lr_method>`` for (i) and (ii), ``paper/<opt>/<group>/<lr_method>-<lr_max>``
    for (iii) and (iv), ``paper/tiny-imagenet/nshb/...`` likewise. SHB's (iii)/(iv) runs from 0.01 are
    the ones with lr_max in {0.02, 0.05, 0.1}; those from 0.1 have lr_max in {0.2, 0.5, 1.0}.
    """
    out: dict[str, dict[str, Any]] = {}
    for opt in ("nshb", "shb"):
        for group, bs in (("i", _CONST_BS), ("ii", _INCR_BS)):
            for method in DECAY_METHODS:
                out[f"paper/{opt}/{group}/{method}"] = {
                    **_COMMON,
                    **bs,
                    "optimizer": opt,
                    "lr_method": method,
                    "init_lr": 0.1,
                    "init_beta": 0.9,
                }
        growth = ("exp_growth", "warmup_const", "warmup_cosine")
        starts = (0.1,) if opt == "nshb" else (0.01, 0.1)
        for lr0 in starts:
            for mult in (2.0, 5.0, 10.0):
                out.update(_growth_runs(opt, lr0, round(lr0 * mult, 10), growth))
    tiny_incr = {**_INCR_BS, "bs_max": 1024}
    tiny: dict[str, dict[str, Any]] = {}
    for method in DECAY_METHODS:
        tiny[f"i/{method}"] = {**_CONST_BS, "lr_method": method, "init_beta": 0.9}
    for method in ("constant", "diminishing"):
        tiny[f"ii/{method}"] = {**tiny_incr, "lr_method": method, "init_beta": 0.9}
    tiny["iii/exp_growth-1.0"] = {**tiny_incr, "lr_method": "exp_growth", "lr_max": 1.0, "init_beta": 0.87}
    tiny["iv/warmup_const-0.5"] = {**tiny_incr, "lr_method": "warmup_const", "lr_max": 0.5, "init_beta": 0.87}
    tiny["iv/warmup_const-1.0"] = {**tiny_incr, "lr_method": "warmup_const", "lr_max": 1.0, "init_beta": 0.87}
    # The Tiny-ImageNet warmup_cosine config has no bs_max (paper-notes §3.1).
    tiny["iv/warmup_cosine-1.0"] = {
        **_INCR_BS,
        "lr_method": "warmup_cosine",
        "lr_max": 1.0,
        "init_beta": 0.87,
    }
    for key, cfg in tiny.items():
        out[f"paper/tiny-imagenet/nshb/{key}"] = {**_COMMON, "optimizer": "nshb", "init_lr": 0.1, **cfg}
    return out


def _build_presets() -> dict[str, TrialSpec]:
    out: dict[str, TrialSpec] = {}
    for name, cfg in paper_configs().items():
        task = TINY_IMAGENET_TASK if name.startswith("paper/tiny-imagenet/") else PAPER_TASK
        out[name] = from_paper_config(cfg, task=task)
    return out


#: Every run of the paper's grid (paper-notes §3.2) as a TrialSpec, by stable name.
PRESETS: dict[str, TrialSpec] = _build_presets()


# --- the four strategies on a shorter budget ------------------------------------------------------------

STRATEGY_NAMES = ("paper-i", "paper-ii", "paper-iii", "paper-iv")
#: First LR per optimizer: NSHB and SGD as the paper's NSHB grid; SHB at 0.01, because SHB(0.01, beta=0.9)
#: follows the same trajectory as NSHB(0.1, 0.9) (paper-notes §2.2), which keeps the four comparable.
DEFAULT_LR0 = {"nshb": 0.1, "sgd": 0.1, "shb": 0.01}


def paper_strategies(
    *,
    max_epochs: int,
    optimizer: str = "nshb",
    b0: int = 8,
    constant_batch: int = 128,
    batch_factor: float = 2.0,
    lr0: float | None = None,
    lr_growth: float = 5.0,
    stages: int = 10,
) -> dict[str, Schedule]:
    """The paper's strategies (i)-(iv), scaled from 300 epochs to ``max_epochs``.

    The paper runs 10 stages of 30 epochs; here a stage lasts interval = max(1, max_epochs // stages)
    epochs, so the batch still doubles ``stages - 1`` times when the budget allows (from b0 = 8, the
    paper's 8 -> 4096; ``batch_plan`` clips it to the training set). The warm-up keeps the paper's ten
    plateaus: w = max(1, max_epochs // 100), W = 10 w (the paper's W = 30, w = 3 at 300 epochs), capped
    at max_epochs. The LR grows ``lr_growth`` (5x, the lab's best NSHB setting, paper-notes §3.4) from
    ``lr0`` (by optimizer, ``DEFAULT_LR0``), which keeps beta^2 gamma < 1 at beta = 0.9.

    - ``paper-i``: constant batch ``constant_batch``, cosine LR from lr0 (constant batch, decaying LR);
    - ``paper-ii``: growing batch, cosine LR from lr0;
    - ``paper-iii``: growing batch, exp_growth LR lr0 -> lr0 * lr_growth;
    - ``paper-iv``: growing batch, warmup_const lr0 -> lr0 * lr_growth.
    """
    if optimizer not in DEFAULT_LR0:
        raise SpecError("optimizer", optimizer, f"must be one of {', '.join(DEFAULT_LR0)}")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise SpecError("max_epochs", max_epochs, "must be an integer >= 1")
    first = DEFAULT_LR0[optimizer] if lr0 is None else lr0
    lr_max = first * lr_growth
    interval = max(1, max_epochs // stages)
    w = max(1, max_epochs // 100)
    warmup = max(2, min(10 * w, max_epochs))
    w = min(w, warmup - 1)
    growing = {"family": "exp_growth", "b0": b0, "factor": batch_factor, "interval": interval, "b_max": None}
    cosine = {"family": "cosine", "lr0": first, "lr_min": 0.0}
    bodies = {
        "paper-i": {"batch_size": {"family": "constant", "b0": constant_batch}, "lr": cosine},
        "paper-ii": {"batch_size": growing, "lr": cosine},
        "paper-iii": {
            "batch_size": growing,
            "lr": {
                "family": "exp_growth",
                "lr0": first,
                "interval": interval,
                "lr_max": lr_max,
                "factor": None,
            },
        },
        "paper-iv": {
            "batch_size": growing,
            "lr": {
                "family": "warmup_const",
                "lr0": first,
                "lr_max": lr_max,
                "warmup_epochs": warmup,
                "warmup_interval": w,
            },
        },
    }
    return {name: Schedule.from_json(body) for name, body in bodies.items()}
