"""A new empty database for a benchmark run: a fresh SQLite file, or a new database on a PostgreSQL server."""

from __future__ import annotations

import atexit
import os
import uuid

import psycopg
from sqlalchemy.engine import make_url


def fresh(url: str) -> str:
    """The URL to use: a SQLite file is removed (with its WAL files) if it exists; for PostgreSQL a new database
    named bench_<random> is made on the server the URL names, and dropped when the benchmark's process ends."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(parsed.database + suffix):
                os.remove(parsed.database + suffix)
        return url
    name = f"bench_{uuid.uuid4().hex[:8]}"
    # made from the server's maintenance database, so the URL may name a database that does not exist yet
    maintenance = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    atexit.register(_drop, maintenance, name)
    return parsed.set(database=name).render_as_string(hide_password=False)


def _drop(maintenance: str, name: str) -> None:
    # FORCE: a connection the benchmark left in a pool would otherwise keep the database (PostgreSQL 13+)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
