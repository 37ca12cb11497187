"""Run a service's Alembic migrations programmatically (no alembic.ini needed).

python -m tooling.migrate points [revision]     upgrade the points database to head
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import asyncpg_url

MIGRATIONS_ROOT = Path(__file__).resolve().parent.parent / "migrations"
SERVICES = ("points", "rewards", "alerts")


def alembic_config(service: str, database_url: str) -> Config:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_ROOT / service))
    config.set_main_option("version_table", f"alembic_version_{service}")
    config.attributes["database_url"] = asyncpg_url(database_url)
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    """Bring `database_url` to `revision` (blocking; call from a thread in async code)."""
    command.upgrade(alembic_config(service, database_url), revision)


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        version_table=context.config.get_main_option("version_table") or "alembic_version",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_migrate)
        await connection.commit()
    await engine.dispose()


def run_alembic_env() -> None:
    """Body of every migrations/<service>/env.py."""
    url = context.config.attributes.get("database_url")
    if url is None:
        raise RuntimeError("run migrations through tooling.migrate (it sets the database URL)")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_online(url))


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    service, revision = args[0], (args[1] if len(args) > 1 else "head")
    url = os.environ.get(f"{service.upper()}_DATABASE_URL")
    if not url:
        print(f"{service.upper()}_DATABASE_URL is not set", file=sys.stderr)
        return 2
    upgrade(service, url, revision)
    print(f"{service}: migrated to {revision}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
