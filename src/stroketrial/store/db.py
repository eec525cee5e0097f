"""The database: where it is, how it is migrated, and how a write is made safely.

SQLite (WAL mode, a file in the working folder) is the default; PostgreSQL is used
through a URL (`postgresql+psycopg://...`). Every write runs in one transaction that
first takes the write lock: on SQLite by BEGIN IMMEDIATE (one writer at a time); on
PostgreSQL a write confined to one trial locks that trial's audit chain head (SELECT
... FOR UPDATE) under a shared platform lock, and any other write takes the platform
lock exclusively (`_take_write_lock`). That orders each chain's writes, keeps each
audit hash chain linear, and means a randomization reads the allocation state no
other request can change before it commits, while trials do not queue behind each
other. After each commit the new heads are appended to the checkpoint log in the
keystore, outside the database.
"""

from __future__ import annotations

from .. import InputError

import os
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import Delete, Update, create_engine, event, select, text
from sqlalchemy.engine import CursorResult, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from .audit import (LOCK_HEAD, PLATFORM, ChainHead, chain_head, held_head, keyed_events, record, write_heads,
                    write_pending)
from .keystore import Keystore, default_location
from .models import AuditHead
from .turns import Turns, TurnsByKey

DEFAULT_DB = "sqlite:///stroketrial.db"


class DatabaseError(InputError):
    """A database URL or state that cannot be used; the message says why."""


def database_url(explicit: str | None = None) -> str:
    """--db, else STROKETRIAL_DB, else a SQLite file in the working folder."""
    url = explicit or os.environ.get("STROKETRIAL_DB") or DEFAULT_DB
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"--db {url!r} is not a database URL; use sqlite:///path.db or "
                            "postgresql+psycopg://user@host/dbname") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(f"--db {url!r}: only SQLite and PostgreSQL are supported")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return url


class Database:
    def __init__(self, url: str | None = None, keys: str | Path | None = None):
        self.url = database_url(url)
        self.backend = make_url(self.url).get_backend_name()
        location = Path(keys) if keys is not None else default_location(self.url)
        self.keystore = Keystore(location) if location is not None else None
        self.engine = self._engine()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, info={"keystore": self.keystore})
        # PostgreSQL: a lone statement needs no transaction around it (see `lookup`)
        self._lookups = self._sessions if self.backend == "sqlite" else sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False,
            info={"keystore": self.keystore})
        # This process's writers queue here, first come first served, before they meet the database's lock:
        # SQLite's writers all in one queue, PostgreSQL's in one per trial (see `write`).
        self._sqlite_writer = Turns()
        self._trial_writers = TurnsByKey()
        self._key: bytes | None = None
        # Trials whose chain head this process has seen: a head, once made, is never deleted (the application
        # role may not), so a write for one of them locks its head without asking first whether it exists.
        self._trial_chains: set[str] = set()

    def _engine(self) -> Engine:
        if self.backend == "sqlite":
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_connection, _record):
                # Let SQLAlchemy, not the driver, say when a transaction begins (the driver's
                # own BEGIN would be DEFERRED and let two writers read the same state).
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(connection):
                mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
                connection.exec_driver_sql(f"BEGIN {mode}")

            return engine
        return create_engine(self.url, pool_size=20, max_overflow=20, pool_pre_ping=True)

    # ---- schema ----------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        from alembic import command
        from sqlalchemy.exc import ProgrammingError

        try:
            command.upgrade(alembic_config(self.url), "head")
        except ProgrammingError as exc:
            if "permission denied" not in str(exc):
                raise
            raise DatabaseError(f"{make_url(self.url).username} may not change the schema; run `stroketrial db "
                                "upgrade --app-role ROLE` as the owner of the tables first") from None
        self.audit_key()

    def grant_app_role(self, role: str) -> None:
        """PostgreSQL: let the application's login role read and write the data, append to the trail and move
        its head, and nothing else. Run as the owner of the tables after each upgrade. Only an owner may
        ALTER a table, disable or drop its triggers, so the application cannot switch the append-only
        triggers off; it has no UPDATE, DELETE or TRUNCATE on the trail at all."""
        if self.backend != "postgresql":
            raise DatabaseError("--app-role is for PostgreSQL; SQLite has no roles")
        if not role.replace("_", "").isalnum():
            raise DatabaseError(f"--app-role {role!r}: a role name is letters, digits and '_'")
        statements = [
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM {role}",
            f"REVOKE DELETE, TRUNCATE ON audit_heads FROM {role}",
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
        ]
        with self.engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)

    def audit_key(self) -> bytes:
        """The keystore's audit key; made (and its making recorded in the trail) on first start.

        A trail that holds keyed events but whose key is missing is never re-keyed: that
        would let anyone who deletes the key file rewrite history. The operator restores it.
        """
        if self._key is not None:
            return self._key
        if self.keystore is None:
            raise DatabaseError("this database has no keystore for its audit key; set STROKETRIAL_KEYS to a folder")
        if self.keystore.exists():
            self._key = self.keystore.key()
            return self._key
        with self.read() as session:
            keyed = keyed_events(session)
        if keyed:
            raise DatabaseError(f"the audit key of this database is missing: {self.keystore.key_path} (set by "
                                "STROKETRIAL_KEYS, else next to the database); restore the keystore folder from "
                                "its backup. A new key is never made for a trail that has one.")
        self._key = self.keystore.create()
        with self.write() as session:
            record(session, "system", "create_audit_key", "keystore", self.keystore.key_id(),
                   after={"key_id": self.keystore.key_id()})
        return self._key

    # ---- sessions --------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Session]:
        """A read of one statement (the API token's user, on every API call). On PostgreSQL it runs outside a
        transaction, which spares two round trips (BEGIN, ROLLBACK); a single statement sees one snapshot
        either way. Anything that reads twice and needs both reads to agree uses `read`."""
        with self._lookups() as session:
            yield session

    @contextmanager
    def write(self, trial: str | None = None) -> Iterator[Session]:
        """One transaction that holds the write lock; commits on success, rolls back on error.

        `trial`: the write touches that trial's data only and records events of its chain (and, at most, of the
        platform's). On PostgreSQL it then runs beside the writes of other trials instead of after them; without
        it the write has the whole platform to itself, as every write had before there were trial chains.
        """
        if self.backend == "sqlite":
            # SQLite admits one writer; queue this process's writers on a lock rather than in
            # SQLite's busy handler, which sleeps in growing steps and makes the slowest request
            # wait a second. Other processes still meet busy_timeout.
            with self._sqlite_writer, self._write(trial) as session:
                yield session
        elif trial is not None:
            # a trial's writes follow each other on its head's row lock anyway; queued here first, they take
            # their turns in order (the row lock favours no one) and hold no connection while they wait
            with self._trial_writers(trial), self._write(trial) as session:
                yield session
        else:
            with self._write(trial) as session:
                yield session

    @contextmanager
    def bookkeeping(self) -> Iterator[Session]:
        """A write that records no audit event (when a session was last seen). On PostgreSQL it takes no write
        lock, so a page view never waits for the trials' writes; on SQLite it is one more write in the queue."""
        if self.backend == "sqlite":
            with self.write() as session:
                del session.info["audit_heads"]  # as on PostgreSQL: record() refuses here
                yield session
            return
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def _write(self, trial: str | None) -> Iterator[Session]:
        key = self.audit_key()
        assert self.keystore is not None
        with self.engine.connect() as connection:
            if self.backend == "sqlite":
                connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            with connection.begin():
                session = Session(bind=connection, expire_on_commit=False,
                                  info={"keystore": self.keystore, "audit_key": key, "audit_heads": {}})
                session.info["audit_scope"] = _take_write_lock(session, self.backend, trial, self._trial_chains)
                try:
                    yield session
                    session.flush()
                    moved = [(h.chain_id, h.seq, h.hash) for h in write_heads(session)]
                finally:
                    session.close()
            # committed: each chain's new head goes to the checkpoint log, outside the database
            for chain_id, seq, digest in moved:
                self.keystore.append_checkpoint(seq, digest, chain_id)

    def dispose(self) -> None:
        self.engine.dispose()


# Any 64-bit number of our own: PostgreSQL's advisory locks are named by one.
PLATFORM_LOCK = 0x5354524F4B45  # "STROKE"


def _take_write_lock(session: Session, backend: str, trial: str | None, known: set[str]) -> str | None:
    """Lock what this write may change; the trial it is confined to, or None for a platform-wide write.

    PostgreSQL: a trial's write takes the platform lock shared, then its trial's chain head FOR UPDATE, so
    writes of one trial follow each other and writes of different trials run side by side; a platform-wide
    write takes the platform lock exclusively and waits for every trial's write to finish. Lock order is always
    platform lock, trial head, platform head (`audit.chain_head`), so no two writes wait for each other in a
    circle. SQLite has one writer at a time (BEGIN IMMEDIATE has locked the database); a trial's write is still
    confined to its trial's chain there, so a write that strays is found on either database.

    `known`: the trials whose head this process has seen; their write takes both locks in one statement.
    """
    if trial is not None and trial in known:
        head = _lock_known_trial_head(session, backend, trial)
        if head is not None:
            session.info["audit_scope"] = trial
            held_head(session, head)
            return trial
        known.discard(trial)  # its head was deleted behind the platform's back: as for a trial without one
    if trial is not None and session.execute(select(AuditHead.chain_id).where(AuditHead.chain_id == trial)
                                             ).first() is None:
        trial = None  # a trial with no chain yet (or no such trial): its first events are written platform-wide
    if backend == "postgresql":
        lock = "pg_advisory_xact_lock_shared" if trial is not None else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {lock}(:key)"), {"key": PLATFORM_LOCK})
    if trial is not None:
        session.info["audit_scope"] = trial
        chain_head(session, trial)
        known.add(trial)
        return trial
    if session.execute(select(AuditHead.chain_id).where(AuditHead.chain_id == PLATFORM)).first() is None:
        raise DatabaseError("the database has no audit head; run `stroketrial db upgrade` first")
    return None


def _lock_known_trial_head(session: Session, backend: str, trial: str) -> ChainHead | None:
    """The trial's head, locked, in one round trip; None when it has none. On PostgreSQL the platform lock is
    taken shared in the same statement, when the head's row is read and before it is locked FOR UPDATE (the
    lateral subquery runs once per head row found, so a trial without a head takes no lock here and its write
    then takes the platform lock exclusively, as any first write of a trial does)."""
    if backend != "postgresql":
        found = session.execute(LOCK_HEAD, {"chain": trial}).one_or_none()
    else:
        found = session.execute(_LOCK_TRIAL_HEAD, {"key": PLATFORM_LOCK, "chain": trial}).one_or_none()
    return None if found is None else ChainHead(*found)


_LOCK_TRIAL_HEAD = text(
    "SELECT audit_heads.chain_id, audit_heads.seq, audit_heads.hash FROM audit_heads "
    "CROSS JOIN LATERAL (SELECT pg_advisory_xact_lock_shared(:key) WHERE audit_heads.chain_id IS NOT NULL) "
    "AS platform_lock WHERE audit_heads.chain_id = :chain FOR UPDATE OF audit_heads")


@event.listens_for(Session, "do_orm_execute")
def _events_before_each_statement(orm_execute_state) -> None:
    # a read later in the same write sees the events recorded so far, as it would see the ORM's pending rows
    if orm_execute_state.session.info.get("audit_pending"):
        write_pending(orm_execute_state.session)


def rows_changed(session: Session, statement: Update | Delete) -> int:
    """Run an UPDATE or DELETE (without RETURNING) in the session; how many rows it changed."""
    # Session.execute() is typed to return a Result, which has no rowcount; for DML without RETURNING it returns
    # a CursorResult, and SQLAlchemy (changelog 2.0.44, typing) says to cast to it to read the count.
    return cast(CursorResult[Any], session.execute(statement)).rowcount or 0


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(str(resources.files("stroketrial.store") / "migrations"))))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
