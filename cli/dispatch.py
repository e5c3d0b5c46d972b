"""``schedsearch dispatcher``: claim queued jobs and run them on Ray (``workers.dispatcher``).

Ray and the workers package are imported inside the command function, so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dispatcher",
        help="Run queued jobs as Ray Tune experiments on SCHEDSEARCH_RAY_ADDRESS (or a local Ray).",
    )
    parser.add_argument("--poll", type=float, default=1.0, help="Seconds between loop steps (default 1).")
    parser.add_argument(
        "--max-jobs", type=int, default=2, help="Jobs this dispatcher runs at once (default 2)."
    )
    parser.set_defaults(handler=cmd_dispatcher)


def cmd_dispatcher(args: argparse.Namespace) -> int:
    from service.settings import get_settings
    from workers.dispatcher import run_forever

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.poll <= 0:
        raise SystemExit(f"--poll must be > 0, got {args.poll}")
    if args.max_jobs < 1:
        raise SystemExit(f"--max-jobs must be >= 1, got {args.max_jobs}")
    return run_forever(settings, poll_s=args.poll, max_jobs=args.max_jobs)
