"""A new empty database for a benchmark run: a fresh SQLite file, or a new database on a PostgreSQL server."""

from __future__ import annotations

import os
import uuid

import psycopg
from sqlalchemy.engine import make_url


def fresh(url: str) -> str:
    """The URL to use: a SQLite file is removed (with its WAL files) if it exists; for PostgreSQL a new database
    named bench_<random> is made on the server the URL names."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(parsed.database + suffix):
                os.remove(parsed.database + suffix)
        return url
    name = f"bench_{uuid.uuid4().hex[:8]}"
    # made from the server's maintenance database, so the URL may name a database that does not exist yet
    with psycopg.connect(parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False),
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return parsed.set(database=name).render_as_string(hide_password=False)
