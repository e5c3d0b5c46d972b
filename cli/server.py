"""``schedsearch serve``, ``schedsearch migrate`` and ``schedsearch token create``.

uvicorn, the app and the dispatcher are imported inside the command functions so ``schedsearch --help``
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from service.settings import Settings, get_settings

log = logging.getLogger("schedsearch.serve")


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="Run the REST API (migrates the database first).")
    serve.add_argument("--host", help="Bind address (default: SCHEDSEARCH_HOST or 127.0.0.1).")
    serve.add_argument("--port", type=int, help="Port (default: SCHEDSEARCH_PORT or 8000).")
    serve.add_argument(
        "--no-dispatcher", action="store_true", help="Do not run the embedded dispatcher in this process."
    )
    serve.set_defaults(handler=cmd_serve)

    migrate = subparsers.add_parser("migrate", help="Upgrade the database schema to the latest revision.")
    migrate.add_argument("--revision", default="head", help="Target revision (default: head).")
    migrate.set_defaults(handler=cmd_migrate)

    token = subparsers.add_parser("token", help="Manage API tokens.")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser("create", help="Create a user's token; prints it alone on the last line.")
    create.add_argument("--user", required=True, help="User name (created if new).")
    create.add_argument("--admin", action="store_true", help="Make the user an admin (sees every job).")
    create.set_defaults(handler=cmd_token_create)


def _migrate(settings: Settings, revision: str = "head") -> str:
    from service.storage.db import make_engine
    from service.storage.migrate import current_revision, upgrade

    engine = make_engine(settings=settings)
    try:
        upgrade(engine, revision)
        return current_revision(engine) or "base"
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    print(f"database at revision {_migrate(settings, args.revision)}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from service.auth import create_token
    from service.storage.db import make_engine, make_session_factory, session_scope

    settings = get_settings()
    _migrate(settings)
    engine = make_engine(settings=settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            token = create_token(session, user_name=args.user, admin=True if args.admin else None)
    finally:
        engine.dispose()
    role = "admin" if args.admin else "user"
    print(f"created a token for {role} {args.user!r}; it is shown only once:")
    print(token)
    return 0


def _start_dispatcher(settings: Settings) -> Callable[[], None]:
    """Run ``workers.dispatcher.run_embedded(settings, stop_event)`` in a daemon thread; returns its stop."""
    from workers.dispatcher import run_embedded

    stop = threading.Event()
    thread = threading.Thread(
        target=run_embedded, args=(settings, stop), name="schedsearch-dispatcher", daemon=True
    )
    thread.start()

    def shutdown() -> None:
        stop.set()
        thread.join(timeout=30)

    return shutdown


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.api.app import create_app

    settings = get_settings()
    updates: dict[str, Any] = {}
    if args.host:
        updates["host"] = args.host
    if args.port is not None:
        updates["port"] = args.port
    if args.no_dispatcher:
        updates["embedded_dispatcher"] = False
    if updates:
        settings = settings.model_copy(update=updates)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    revision = _migrate(settings)
    log.info("database %s at revision %s", _redacted(settings.resolved_database_url()), revision)
    stop_dispatcher = _start_dispatcher(settings) if settings.embedded_dispatcher else None
    # uvicorn re-raises SIGTERM after its graceful shutdown, with the handler found at start; making that
    # handler raise SystemExit lets the ``finally`` below stop the dispatcher (and the local Ray it started).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
        )
    finally:
        if stop_dispatcher is not None:
            stop_dispatcher()
    return 0


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
