"""Database plumbing every service shares: engines and the foundation tables.

The foundation tables (processed events, dead letters, outbox, API keys) live in
each service's own database; each service's first Alembic revision creates them
with `create_foundation_tables`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> sa.MetaData:
    """A MetaData with the project's constraint naming convention."""
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


foundation = new_metadata()

processed_events = sa.Table(
    "processed_events",
    foundation,
    sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("fingerprint", pg.BYTEA, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column(
        "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Pruning past the dedupe retention reads the oldest ids (shared.kafka.dedupe).
    sa.Index("ix_processed_events_processed_at", "processed_at"),
)

dead_letters = sa.Table(
    "dead_letters",
    foundation,
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("offset", sa.BigInteger, primary_key=True),
    sa.Column("error_code", sa.Text, nullable=False),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column(
        "dead_lettered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

outbox = sa.Table(
    "outbox",
    foundation,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", pg.BYTEA),
    sa.Column("value", pg.BYTEA, nullable=False),
    sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

api_keys = sa.Table(
    "api_keys",
    foundation,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_hash", pg.BYTEA, nullable=False),
    sa.Column("scopes", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("merchant_id", sa.Text),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)


def create_foundation_tables(op: Any) -> None:
    """Called from each service's first Alembic revision (`op` is alembic.op).

    Written out, not built from the tables above: a revision must keep building what it
    built when it was released, so a change to a table above needs a new revision in every
    service, and the drift tests (tests/support/schema_drift.py) catch a change without one.
    """
    now = sa.func.now()
    op.create_table(
        "processed_events",
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("fingerprint", pg.BYTEA, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("error_code", sa.Text, nullable=False),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column(
            "dead_lettered_at", sa.DateTime(timezone=True), nullable=False, server_default=now
        ),
        sa.PrimaryKeyConstraint("topic", "partition", "offset", name="pk_dead_letters"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", pg.BYTEA),
        sa.Column("value", pg.BYTEA, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", pg.BYTEA, nullable=False),
        sa.Column("scopes", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("merchant_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )


def drop_foundation_tables(op: Any) -> None:
    for name in ("api_keys", "outbox", "dead_letters", "processed_events"):
        op.drop_table(name)


def asyncpg_dsn(url: str) -> str:
    """The asyncpg spelling of a SQLAlchemy `postgresql+asyncpg://` URL (password kept)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_read_pool(url: str, size: int) -> ReadPool:
    """The pool of bare asyncpg connections for hot read-only routes, where SQLAlchemy's
    per-statement work is most of the CPU a request costs; one connection is opened now
    (so a database that does not answer fails the start, as before)."""
    pool = ReadPool(asyncpg_dsn(url), size)
    await pool.open()
    return pool


class ReadPool:
    """At most `size` bare asyncpg connections for plain read-only statements:
    `async with pool.acquire() as conn`.

    It never opens more than `size` connections (a burst waits for a free one, in arrival
    order, instead of paying for new connections it then closes), and each connection keeps
    its prepared statements. Why not asyncpg's own pool: its checkout and return cost 17-20
    µs of CPU per request (the return runs in a task of its own), a twentieth of a whole
    balance read; here a checkout is a list pop. Its users only read with plain statements
    (no SET, LISTEN, advisory locks or cursors), so a returned connection needs no session
    reset; one that comes back closed or inside a transaction is closed and dropped, and
    its place opens anew. A query cancelled half-way needs nothing: asyncpg waits for its
    end before the connection's next. Connections are not closed for idleness.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._free: list[asyncpg.Connection] = []
        self._out = 0  # connections open or being opened, free or in use
        # Requests waiting: each gets a connection, or None: open one yourself.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    async def open(self) -> None:
        self._pass_on(await self.take())

    def acquire(self) -> _Checkout:
        return _Checkout(self)

    async def take(self) -> asyncpg.Connection:
        while self._free:
            connection = self._free.pop()
            if not connection.is_closed():
                return connection
            self._out -= 1  # lost while free: the server closed it
        if self._out >= self.size:
            waiter: asyncio.Future[asyncpg.Connection | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                given = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # served as it was cancelled
                    self._pass_on(waiter.result())
                raise
            if given is not None:
                return given
        self._out += 1
        try:
            connection = await asyncpg.connect(self.dsn)
        except BaseException:
            self._out -= 1
            self._pass_on(None)
            raise
        return connection

    def give_back(self, connection: asyncpg.Connection) -> None:
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()  # the server rolls back what was left open
            self._out -= 1
            self._pass_on(None)
            return
        self._pass_on(connection)

    def _pass_on(self, connection: asyncpg.Connection | None) -> None:
        """A connection, or a place to open one (None), to the first request still
        waiting; a connection nobody waits for goes onto the free list."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is not None:
            self._free.append(connection)

    async def close(self) -> None:
        """Close the free connections now and each one in use when it comes back."""
        self._closed = True
        free, self._free = self._free, []
        for connection in free:
            await connection.close()


class _Checkout:
    """`async with pool.acquire() as conn`: a class, not a generator-based manager, for
    the hot path's sake."""

    __slots__ = ("connection", "pool")

    def __init__(self, pool: ReadPool) -> None:
        self.pool = pool
        self.connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self.connection = await self.pool.take()
        return self.connection

    async def __aexit__(self, *exc_info: object) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            self.pool.give_back(connection)


async def driver_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy one (same session, same transaction)."""
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver


async def transaction_driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, inside `conn`'s transaction.

    SQLAlchemy begins its transaction lazily, on its first statement: a statement sent to
    the driver before any went through SQLAlchemy would run, and commit, on its own (a
    row lock taken so would be gone at once). So a unit of work whose first statement
    goes to the driver begins the transaction through SQLAlchemy first.
    """
    driver = await driver_connection(conn)
    if not driver.is_in_transaction():
        await conn.execute(_BEGIN)
    return driver


_BEGIN = sa.text("SELECT 1")


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine; pre-ping so a restarted PostgreSQL costs one retry, not a crash."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
