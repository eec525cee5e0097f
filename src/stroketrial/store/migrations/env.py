"""Alembic environment: migrations run against the URL the Database was given."""

from alembic import context
from sqlalchemy import create_engine

from stroketrial.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """The database URL that `alembic_config` (store/db.py) sets; Alembic's config types every option as optional."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no sqlalchemy.url in the Alembic config; migrate with `stroketrial db upgrade`")
    return url


def run_migrations_online() -> None:
    engine = create_engine(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
