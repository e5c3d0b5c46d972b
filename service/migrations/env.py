"""Alembic environment, driven programmatically by ``service.storage.migrate`` (no alembic.ini needed).

The caller passes either an open connection (``config.attributes["connection"]``, used by tests) or a URL
(``sqlalchemy.url``). SQLite uses batch mode so later ALTERs work there too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from service.storage.db import normalize_url
from service.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = normalize_url(config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
