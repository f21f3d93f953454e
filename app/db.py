"""Engine, sessions and the column types shared by every table."""

import functools
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import DateTime, MetaData, Select, Table, TypeDecorator, event, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel

# Stable constraint names: SQLite batch migrations and autogenerate comparisons need them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both dialects (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, foreign_keys: bool = True) -> None:
    # Python's sqlite3 opens transactions itself, only before INSERT/UPDATE/DELETE, so DDL and reads would run
    # outside them. Switch that off and BEGIN on SQLAlchemy's begin (below): migrations become atomic and a
    # transaction reads one snapshot, as on PostgreSQL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while one writer commits; foreign keys are off by default in SQLite.
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, *, foreign_keys: bool = True, pool_size: int | None = None,
                max_overflow: int | None = None, pool_timeout_s: float | None = None,
                connect_timeout_s: float | None = None, statement_timeout_s: float | None = None,
                **kwargs: Any) -> AsyncEngine:
    """Create the async engine for `url`, with SQLite set up for concurrent use.

    `foreign_keys=False` is for migrations only: SQLite's batch mode rebuilds a table by dropping it, which
    enforced foreign keys forbid while other tables point at it. The pool's size and the timeouts apply to
    PostgreSQL (SQLite's connections are files opened in-process, waiting `busy_timeout` on a writer).
    """
    if make_url(url).get_backend_name() == "postgresql":
        kwargs |= {k: v for k, v in (("pool_size", pool_size), ("max_overflow", max_overflow),
                                      ("pool_timeout", pool_timeout_s)) if v is not None}
        # asyncpg's: `timeout` to connect, `command_timeout` a statement; either raises TimeoutError (a 503).
        connect = {k: v for k, v in (("timeout", connect_timeout_s), ("command_timeout", statement_timeout_s))
                   if v is not None}
        if connect:
            kwargs["connect_args"] = {**kwargs.get("connect_args", {}), **connect}
    # SQL parameters are voters' names, notes and password hashes: never in a log line or an error's message.
    engine = create_async_engine(url, hide_parameters=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect",
                     lambda conn, record: _sqlite_pragmas(conn, record, foreign_keys=foreign_keys))
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    else:
        event.listen(engine.sync_engine, "handle_error", lambda context: hide_row_values(context.original_exception))
    return engine


def hide_row_values(exc: BaseException | None) -> None:
    """Drop PostgreSQL's DETAIL from the driver's errors in `exc`'s chain: it repeats the failing row's values
    ("Failing row contains (...)", "Key (...)=(...)"), which a logged traceback would print beside the hidden
    parameters. The message, the SQLSTATE and the statement stay."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "detail", None) and hasattr(exc, "sqlstate"):
            exc.detail = None  # type: ignore[attr-defined]
        exc = exc.__cause__ or exc.__context__


# SQLSTATEs of a database shutting down, crashed, starting up or out of connections (class 08 is the
# connection's own failures): nothing wrong with the request, and worth trying again shortly.
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300"}
# SQLite's: a writer held the file past busy_timeout, or the file can't be opened.
_UNAVAILABLE_SQLITE = {"database is locked", "unable to open database file"}
# What reaches a request unwrapped when the database can't be reached: the socket's errors, and asyncpg's own
# on the hot paths that take it straight (SQLAlchemy wraps the rest in DBAPIError).
UNREACHABLE: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, asyncpg.PostgresConnectionError,
                                             asyncpg.InterfaceError)


def unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) says the database can't be reached now (down, restarting, out of
    connections, or on SQLite busy past its timeout) rather than that a statement was wrong: the caller may
    try again. The hot paths' errors come straight from asyncpg, the others wrapped by SQLAlchemy."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        # Refused, reset, aborted on the way, or no answer in time (a hung server, a pool with none free).
        if isinstance(exc, ConnectionError | TimeoutError | PoolTimeout):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES):
            return True
        if isinstance(exc, sqlite3.OperationalError) and str(exc) in _UNAVAILABLE_SQLITE:
            return True
        if isinstance(exc, asyncpg.PostgresConnectionError) or (
                isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _sqlite_begin(conn: Any) -> None:
    # A transaction that reads and then writes can't upgrade its snapshot once another writer has committed
    # ("database is locked" at once, busy_timeout or not); writers say so up front and queue instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITER) else "BEGIN")


WRITER = "doorstep_writer"


async def begin_write(session: AsyncSession) -> None:
    """Open the session's transaction as a writer: on SQLite it waits its turn to write from the start.

    Call it before the service's first write. On SQLite a transaction the session has open (the caller's
    reads, say) is committed first: it holds no writes yet, and `expire_on_commit=False` keeps what it loaded.
    PostgreSQL goes on in the open transaction: at read committed each statement reads afresh and writers lock
    rows, so there is nothing to start over, and a write request saves two round trips.
    """
    if session.in_transaction():
        if (await session.connection()).dialect.name != "sqlite":
            return
        await session.commit()
    await session.connection(execution_options={WRITER: True})


Query = TypeVar("Query", bound=Select[Any])


def object_agg(connection: Any, key: Any, value: Any) -> Any:
    """The aggregate of rows' `key` and `value` into one JSON object."""
    if connection.dialect.name == "postgresql":
        return func.json_object_agg(key, value)
    return func.json_group_object(key, value)


async def skip_locked(session: AsyncSession, query: Query, *, of: Any = None) -> Query:
    """`query` taking the rows it reads for this transaction, passing over rows another one has taken: FOR UPDATE
    SKIP LOCKED (of the tables `of` only, if given) on PostgreSQL. SQLite has no row locks to skip: its writers
    take turns (begin_write), so the query goes as it is."""
    if (await session.connection()).dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=of)
    return query


def make_sessionmaker(bind: AsyncEngine | AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions on the engine, or on a connection in a transaction of its own (the tests'): each session's
    transaction is then a savepoint in it, its commit a release."""
    if isinstance(bind, AsyncConnection):
        return async_sessionmaker(bind, expire_on_commit=False, join_transaction_mode="create_savepoint")
    return async_sessionmaker(bind, expire_on_commit=False)


async def bulk_insert(session: AsyncSession, table: Table, columns: Sequence[str],
                      rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert many rows of plain values (int, float, str, bool, None) in the session's transaction.

    PostgreSQL gets COPY (several times faster than INSERT for thousands of rows); SQLite one executemany.
    """
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(table.name, records=rows, columns=list(columns))
    else:
        marks = ", ".join("?" for _ in columns)
        await connection.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})",
                                         list(rows))



async def insert_new(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows no unique key already holds, leaving the others as they are (another writer's, perhaps
    meanwhile: an import and a sync tagging the same person): INSERT ... ON CONFLICT DO NOTHING on both dialects."""
    if not rows:
        return
    insert = postgresql.insert if (await session.connection()).dialect.name == "postgresql" else sqlite.insert
    await session.execute(insert(table).on_conflict_do_nothing(), list(rows))


_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@functools.lru_cache(maxsize=64)
def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with its `:name` parameters as asyncpg's `$n`, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"
    return _NAMED.sub(number, sql), tuple(names)


async def pg_fetch(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    """Run PostgreSQL `sql` (`:name` parameters, arrays as Python lists) on the session's connection, in its
    transaction, straight through asyncpg: the rows (asyncpg Records).

    For the hot paths only (sync's reads and writes, through `fetch_rows` where SQLite needs another spelling):
    SQLAlchemy's per-statement work cost more than these statements, which are PostgreSQL's own SQL anyway.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    if not raw.driver_connection.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with its own first statement: a raw statement going first
        # would run outside the session's transaction, each one committed on its own (and an xact lock let go).
        await connection.exec_driver_sql("SELECT 1")
    query, names = _positional(sql)
    return await raw.driver_connection.fetch(query, *(params[name] for name in names))


async def fetch_rows(session: AsyncSession, core: Any, pg_sql: str, params: dict[str, Any]) -> Sequence[Any]:
    """The rows (indexable by position) of a hot read spelled twice: `pg_sql` straight through asyncpg on
    PostgreSQL (`:name` parameters, arrays as lists), the Core statement `core` elsewhere."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        return await pg_fetch(session, pg_sql, params)
    return (await connection.execute(core, params)).all()


async def bulk_set(session: AsyncSession, table: Table, column: str, ids: Sequence[int],
                   values: Sequence[int | None]) -> None:
    """Set one integer column of many rows by id, in the session's transaction.

    PostgreSQL gets one UPDATE joined to unnest() of two arrays; SQLite one executemany.
    """
    if not ids:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute(
            f"UPDATE {table.name} SET {column} = v.value FROM unnest($1::bigint[], $2::bigint[]) AS v(id, value) "
            f"WHERE {table.name}.id = v.id", list(ids), list(values))
    else:
        await connection.exec_driver_sql(f"UPDATE {table.name} SET {column} = ? WHERE id = ?",
                                         list(zip(values, ids, strict=True)))
