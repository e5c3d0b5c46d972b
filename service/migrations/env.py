"""Alembic environment, driven programmatically by ``service.storage.migrate`` (no alembic.ini needed).

The caller passes an open connection (``config.attributes["connection"]``): ``upgrade(engine)`` opens it on
the engine made from the settings, so the URL is the settings' one. SQLite uses batch mode so later ALTERs
work there too.
"""

from __future__ import annotations

from alembic import context

from service.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run the migrations with `schedsearch migrate` (service.storage.migrate.upgrade), which passes "
            "the connection; there is no alembic.ini"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
