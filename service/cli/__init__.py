"""The ``schedsearch`` command.

Each role registers its own subcommands from a small module so that several people can work on the CLI
without touching one file:

- ``local``: ``train``, ``schedules``, ``check`` (run and inspect schedules on this machine);
- ``server``: ``serve``, ``migrate``, ``token`` (the REST service and its database);
- ``dispatch``: ``dispatcher`` (runs queued jobs on Ray);
- ``client``: ``submit``, ``jobs``, ``show``, ``trials``, ``report``, ``plot``, ``cancel`` (REST client);
- ``export``: ``export`` (a found schedule as JSON, a PyTorch snippet or Megatron-LM arguments).

Heavy imports (torch, ray, uvicorn) happen inside the command functions, never at import time, so
``schedsearch --help`` and the client commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that expose ``register(subparsers)``; a module that does not exist yet is skipped so the CLI works
# while the project grows.
_COMMAND_MODULES = ("local", "server", "dispatch", "client", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schedsearch",
        description="Search batch-size and learning-rate schedules for SGD with momentum.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"service.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"service.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result = handler(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
