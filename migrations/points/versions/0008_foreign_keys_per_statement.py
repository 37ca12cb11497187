"""The books' foreign keys checked once per statement, not once per row: lots, ledger
lines and orders name an existing account, and an order's lot an existing lot, as
before; the parents they name are never deleted and never change key.

A declared foreign key checks every inserted row by itself: a trigger event queued per
row and constraint, then a query run per row through SPI, which locks the parent row
(`FOR KEY SHARE`; on a lot inserted by the same transaction, one more WAL record and a
dirtied page). A purchase inserts a lot, a ledger line and an order: four checks,
~20 µs of PostgreSQL's CPU per purchase out of ~63 (backend CPU per batch of the
points accrual, replayed without the broker: 63.2 µs with the four constraints, 43.6
without any check, 49.6 with the statement checks below; min of 4 runs per batch).

What replaces each constraint `fk_<child>_<column>_<parent>`, under its name:
- on INSERT, one statement trigger per child table looks for a new row whose key is
  not in the parent, as a nested loop of index probes whatever the planner's statistics
  say (a `LIMIT` keeps each probe a subquery the planner cannot turn into a scan of the
  whole parent table), and raises `foreign_key_violation` naming the constraint;
- on UPDATE of the key column of `lots` or `order_earnings`, a row trigger checks the
  new key (nothing updates those columns; `ledger` is append-only, points_0002);
- the parents, `accounts` and `lots`, refuse DELETE, TRUNCATE and a change of key. A
  declared key also let a parent nobody referenced be deleted; nothing deletes either
  (an account with a ledger line could not be deleted before either), and with parents
  that never go, the checks need no lock on them: a parent seen once stays.
`redemptions` keeps its declared key on accounts (not on the accrual path).

Revision ID: points_0008
Revises: points_0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "points_0008"
down_revision: str | None = "points_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (constraint, child table, column, parent table, parent column), as points_0002 declared
_KEYS = (
    ("fk_lots_customer_id_accounts", "lots", "customer_id", "accounts", "customer_id"),
    ("fk_ledger_customer_id_accounts", "ledger", "customer_id", "accounts", "customer_id"),
    (
        "fk_order_earnings_customer_id_accounts",
        "order_earnings",
        "customer_id",
        "accounts",
        "customer_id",
    ),
    ("fk_order_earnings_lot_id_lots", "order_earnings", "lot_id", "lots", "lot_id"),
)


def _statement_check(function: str, column: str, parent: str, key_type: str) -> str:
    """The statement trigger function: the first new row (transition table `added`) whose
    `column` is not a key of `parent`, if any, is refused as PostgreSQL refuses it."""
    return f"""
    CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        missing {key_type};
    BEGIN
        SELECT r.{column} INTO missing
        FROM added AS r
        LEFT JOIN LATERAL (
            SELECT true AS hit FROM {parent} AS k WHERE k.{column} = r.{column} LIMIT 1
        ) AS p ON true
        WHERE r.{column} IS NOT NULL AND p.hit IS NULL
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                    TG_TABLE_NAME, TG_ARGV[0]
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[0],
                    TABLE = TG_TABLE_NAME,
                    DETAIL = format('Key ({column})=(%s) is not present in table "{parent}".',
                        missing);
        END IF;
        RETURN NULL;
    END $$
    """


def _row_check(function: str, column: str, parent: str) -> str:
    """The row trigger function for an UPDATE that changes `column` (never NULL here)."""
    return f"""
    CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM {parent} AS k WHERE k.{column} = NEW.{column};
        IF NOT FOUND THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                    TG_TABLE_NAME, TG_ARGV[0]
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[0],
                    TABLE = TG_TABLE_NAME,
                    DETAIL = format('Key ({column})=(%s) is not present in table "{parent}".',
                        NEW.{column});
        END IF;
        RETURN NULL;
    END $$
    """


_FUNCTIONS = [
    _statement_check("points_new_rows_have_accounts", "customer_id", "accounts", "text"),
    _statement_check("points_new_rows_have_lots", "lot_id", "lots", "uuid"),
    _row_check("points_row_has_account", "customer_id", "accounts"),
    _row_check("points_row_has_lot", "lot_id", "lots"),
    """
    CREATE FUNCTION points_parent_rows_stay() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% rows are referenced by the points books and stay: % refused',
                TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
]

_STATEMENT_FUNCTIONS = {
    "accounts": "points_new_rows_have_accounts",
    "lots": "points_new_rows_have_lots",
}
_ROW_FUNCTIONS = {"accounts": "points_row_has_account", "lots": "points_row_has_lot"}


def _child_triggers() -> list[str]:
    statements = []
    for constraint, child, column, parent, _ in _KEYS:
        statements.append(
            f"CREATE TRIGGER {constraint}_insert AFTER INSERT ON {child}"
            " REFERENCING NEW TABLE AS added FOR EACH STATEMENT"
            f" EXECUTE FUNCTION {_STATEMENT_FUNCTIONS[parent]}('{constraint}')"
        )
        if child != "ledger":  # append-only: no UPDATE gets through (points_0002)
            statements.append(
                f"CREATE TRIGGER {constraint}_update AFTER UPDATE OF {column} ON {child}"
                f" FOR EACH ROW WHEN (NEW.{column} IS DISTINCT FROM OLD.{column}"
                f" AND NEW.{column} IS NOT NULL)"
                f" EXECUTE FUNCTION {_ROW_FUNCTIONS[parent]}('{constraint}')"
            )
    return statements


def _parent_triggers() -> list[str]:
    statements = []
    for parent, key in (("accounts", "customer_id"), ("lots", "lot_id")):
        statements += [
            f"CREATE TRIGGER {parent}_stay BEFORE DELETE ON {parent}"
            " FOR EACH ROW EXECUTE FUNCTION points_parent_rows_stay()",
            f"CREATE TRIGGER {parent}_key_stays BEFORE UPDATE OF {key} ON {parent}"
            f" FOR EACH ROW WHEN (NEW.{key} IS DISTINCT FROM OLD.{key})"
            " EXECUTE FUNCTION points_parent_rows_stay()",
            f"CREATE TRIGGER {parent}_no_truncate BEFORE TRUNCATE ON {parent}"
            " FOR EACH STATEMENT EXECUTE FUNCTION points_parent_rows_stay()",
        ]
    return statements


def upgrade() -> None:
    # The checks first, the constraints after, in the migration's one transaction: no
    # moment without either.
    for statement in [*_FUNCTIONS, *_child_triggers(), *_parent_triggers()]:
        op.execute(statement)
    for constraint, child, _, _, _ in _KEYS:
        op.drop_constraint(constraint, child, type_="foreignkey")


def downgrade() -> None:
    for constraint, child, column, parent, key in _KEYS:
        op.create_foreign_key(constraint, child, parent, [column], [key])
    for parent in ("accounts", "lots"):
        for suffix in ("stay", "key_stays", "no_truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {parent}_{suffix} ON {parent}")
    for constraint, child, _, _, _ in _KEYS:
        for suffix in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {constraint}_{suffix} ON {child}")
    for function in (
        "points_parent_rows_stay",
        "points_row_has_lot",
        "points_row_has_account",
        "points_new_rows_have_lots",
        "points_new_rows_have_accounts",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
