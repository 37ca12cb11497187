"""Drift between a service's table definitions and what its Alembic migrations create.

The code queries the tables its `db.py` declares (and the foundation tables of
`shared.db`); production runs on the tables the migrations built. `schema_drift` migrates
nothing itself: it compares a database migrated to head with the declarations and names
every difference alembic's autogenerate sees (tables, columns, types, nullability, server
defaults, indexes, unique and foreign keys), plus what autogenerate leaves out: CHECK
constraints by name both ways, the definition of every index and CHECK constraint
present on both sides (a partial index's WHERE, a check's expression), and each table's
storage parameters (fillfactor).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.db import create_engine


async def schema_drift(database_url: str, *declared: sa.MetaData) -> list[str]:
    """Every way the migrated database at `database_url` differs from `declared`."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_drift, declared)
    finally:
        await engine.dispose()


def _drift(conn: sa.Connection, declared: tuple[sa.MetaData, ...]) -> list[str]:
    wanted = sa.MetaData()
    for metadata in declared:
        for table in metadata.sorted_tables:
            table.to_metadata(wanted)
    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": _not_alembic_bookkeeping,
        },
    )
    found = [_describe(diff) for diff in _flatten(compare_metadata(context, wanted))]
    return (
        found
        + _check_drift(conn, wanted)
        + _definition_drift(conn, wanted)
        + _storage_drift(conn, wanted)
    )


def _not_alembic_bookkeeping(name: str | None, kind: str, parent: object) -> bool:
    """Each service keeps its revision in `alembic_version_<service>`, never in db.py."""
    return not (kind == "table" and name is not None and name.startswith("alembic_version"))


def _flatten(diffs: Iterable[Any]) -> Iterable[tuple[Any, ...]]:
    # Column modifications come grouped in a list per column; the rest are single tuples.
    for diff in diffs:
        if isinstance(diff, list):
            yield from diff
        else:
            yield diff


def _describe(diff: tuple[Any, ...]) -> str:
    """One difference in words: what the code declares against what the migrations built."""
    op = diff[0]
    if op in ("add_table", "remove_table"):
        where = "db.py only" if op == "add_table" else "the migrations only"
        return f"table {diff[1].name}: in {where}"
    if op in ("add_column", "remove_column"):
        where = "db.py only" if op == "add_column" else "the migrations only"
        return f"column {diff[2]}.{diff[3].name}: in {where}"
    if op.startswith("modify_"):
        _, _, table, column, _, built, declared = diff
        what = op.removeprefix("modify_")
        return (
            f"column {table}.{column}: {what} {_shown(built)} in the database,"
            f" {_shown(declared)} in db.py"
        )
    if op.startswith(("add_", "remove_")):
        kind, thing = op.split("_", 1)
        where = "db.py only" if kind == "add" else "the migrations only"
        name = getattr(diff[1], "name", None)
        table = getattr(getattr(diff[1], "table", None), "name", "?")
        return f"{thing} {name} on {table}: in {where}"
    return repr(diff)


def _shown(value: object) -> str:
    """A server default as SQL (`'member'::text`, `now()`), anything else as Python shows it."""
    if isinstance(value, sa.DefaultClause):
        arg = value.arg
        return repr(arg) if isinstance(arg, str) else str(arg)
    return repr(value)


def _check_drift(conn: sa.Connection, wanted: sa.MetaData) -> list[str]:
    """CHECK constraints, by name, in db.py only or in the migrations only."""
    built: set[tuple[str, str]] = {
        (table, name)
        for table, name in conn.execute(
            sa.text(
                "SELECT rel.relname, con.conname FROM pg_constraint con"
                " JOIN pg_class rel ON rel.oid = con.conrelid"
                " JOIN pg_namespace ns ON ns.oid = rel.relnamespace"
                " WHERE con.contype = 'c' AND ns.nspname = current_schema()"
            )
        )
    }
    declared = {
        (table.name, str(constraint.name))
        for table in wanted.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, sa.CheckConstraint)
    }
    tables = {table.name for table in wanted.sorted_tables}
    return sorted(
        [f"check {name} on {table}: in db.py only" for table, name in declared - built]
        + [
            f"check {name} on {table}: in the migrations only"
            for table, name in built - declared
            if table in tables  # a table only the migrations have is reported already
        ]
    )


def _storage_drift(conn: sa.Connection, wanted: sa.MetaData) -> list[str]:
    """Tables whose storage parameters (`postgresql_with`, e.g. fillfactor) differ."""
    built = {
        name: sorted(options or [])
        for name, options in conn.execute(
            sa.text(
                "SELECT rel.relname, rel.reloptions FROM pg_class rel"
                " JOIN pg_namespace ns ON ns.oid = rel.relnamespace"
                " WHERE rel.relkind = 'r' AND ns.nspname = current_schema()"
            )
        )
    }
    found = []
    for table in wanted.sorted_tables:
        declared = table.dialect_options["postgresql"]["with"] or {}
        options = sorted(f"{key}={value}" for key, value in declared.items())
        if table.name in built and built[table.name] != options:
            found.append(
                f"table {table.name}: storage {built[table.name]} in the database,"
                f" {options} in db.py"
            )
    return found


_PROBE = "schema_drift_probe"


def _definition_drift(conn: sa.Connection, wanted: sa.MetaData) -> list[str]:
    """Indexes and CHECK constraints whose definition differs on the two sides.

    The declared one is built beside the migrated one under a probe name (the caller's
    transaction is rolled back) and PostgreSQL renders both, so spelling never differs.
    """
    found = []
    for table in wanted.sorted_tables:
        for index in table.indexes:
            built = _index_definition(conn, str(index.name))
            if built is not None:
                ddl = str(sa.schema.CreateIndex(index).compile(dialect=conn.dialect))
                conn.exec_driver_sql(ddl.replace(str(index.name), _PROBE, 1))
                probed = str(_index_definition(conn, _PROBE))
                conn.exec_driver_sql(f"DROP INDEX {_PROBE}")
                declared = probed.replace(_PROBE, str(index.name), 1)
                if declared != built:
                    found.append(
                        f"index {index.name}: {built} in the database, {declared} in db.py"
                    )
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                found += _check_definition_drift(conn, table, constraint)
    return found


def _index_definition(conn: sa.Connection, name: str) -> str | None:
    found = conn.scalar(sa.text("SELECT pg_get_indexdef(to_regclass(:name))"), {"name": name})
    return None if found is None else str(found)


def _check_definition_drift(
    conn: sa.Connection, table: sa.Table, constraint: sa.CheckConstraint
) -> list[str]:
    query = sa.text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = to_regclass(:table) AND conname = :name"
    )
    name = str(constraint.name)
    built = conn.scalar(query, {"table": table.name, "name": name})
    if built is None:
        return []  # reported by name already
    expression = constraint.sqltext.compile(
        dialect=conn.dialect, compile_kwargs={"literal_binds": True}
    )
    conn.exec_driver_sql(
        f"ALTER TABLE {table.name} ADD CONSTRAINT {_PROBE} CHECK ({expression}) NOT VALID"
    )
    declared = str(conn.scalar(query, {"table": table.name, "name": _PROBE}))
    conn.exec_driver_sql(f"ALTER TABLE {table.name} DROP CONSTRAINT {_PROBE}")
    declared = declared.removesuffix(" NOT VALID")
    if declared == built:
        return []
    return [f"check {name} on {table.name}: {built} in the database, {declared} in db.py"]
