"""The ``schedsearch`` command, the top layer of the project: it may import ``schedules``, ``service`` and
``workers``, and nothing imports it (``docs/design.md``, "Layers and imports").

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
import sys
from collections.abc import Sequence

from cli import client, dispatch, export, local, server

# Modules that expose ``register(subparsers)``, in the order ``--help`` lists their commands.
_COMMAND_MODULES = (local, server, dispatch, client, export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schedsearch",
        description="Search batch-size and learning-rate schedules for SGD with momentum.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
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
