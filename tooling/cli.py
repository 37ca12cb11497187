"""`loyalty`: the operator's command line.

    loyalty keys create --service points --name "Acme POS" --scope points:read [--merchant M]
    loyalty keys list   --service points
    loyalty keys revoke --service points KEY_ID
    loyalty publish EVENTS.json                  validated against the contracts first
    loyalty tail loyalty.alerts | <group>.dlq    readable lines, dlq.* headers included
    loyalty dlq replay --group G (--offset N [--partition P] | --event-id ID) [--file FIXED.json]
    loyalty invariants                           every service's invariant checks
    loyalty simulate --customers 200 --days 365 --speed 525600 --seed 7
    loyalty topics ensure                        create the platform and dead-letter topics

Addresses come from flags, else the environment (`<SERVICE>_DATABASE_URL`,
`KAFKA_BOOTSTRAP_SERVERS`, `<SERVICE>_URL`, `<SERVICE>_ADMIN_KEY`), else what
`make run` / `python -m tooling.devinfra up` wrote under var/ (or $LOYALTY_VAR_DIR):
`env` and `services.json`. A new key's plaintext is printed once, alone on stdout, so
`KEY=$(loyalty keys create ...)` captures it; everything else goes to stderr.

Each command group is one `add_*_commands(subparsers)` function in `COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.auth import ApiKeyRecord, create_key, list_keys, revoke_key
from shared.db import create_engine
from shared.errors import DomainError, is_transient
from tooling.cli_backtest import add_backtest_commands
from tooling.cli_env import CommandError, database_url
from tooling.cli_invariants import add_invariant_commands
from tooling.cli_kafka import add_kafka_commands
from tooling.cli_simulate import add_simulate_commands
from tooling.devinfra import SERVICE_DATABASES
from tooling.scopes import register_service_scopes

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


async def _in_transaction(
    args: argparse.Namespace, work: Callable[[AsyncConnection], Awaitable[int]]
) -> int:
    engine = create_engine(database_url(args.service, args.database_url), pool_size=1)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


async def keys_create(args: argparse.Namespace) -> int:
    async def work(conn: AsyncConnection) -> int:
        issued = await create_key(conn, args.name, args.scopes, args.merchant)
        bound = f", bound to merchant {args.merchant}" if args.merchant else ""
        print(f"created API key {issued.key_id} for {args.service}{bound}", file=sys.stderr)
        print(issued.plaintext)
        print("store it now: it is shown once and cannot be recovered", file=sys.stderr)
        return 0

    return await _in_transaction(args, work)


def _key_line(key: ApiKeyRecord) -> str:
    revoked = key.revoked_at
    state = "active" if revoked is None else f"revoked {revoked.isoformat(timespec='seconds')}"
    return "\t".join(
        [
            key.key_id,
            key.name,
            ",".join(key.scopes),
            key.merchant_id or "-",
            key.created_at.isoformat(timespec="seconds"),
            state,
        ]
    )


async def keys_list(args: argparse.Namespace) -> int:
    async def work(conn: AsyncConnection) -> int:
        keys = await list_keys(conn, include_revoked=not args.active)
        print("\t".join(["key_id", "name", "scopes", "merchant", "created", "state"]))
        for key in keys:
            print(_key_line(key))
        return 0

    return await _in_transaction(args, work)


async def keys_revoke(args: argparse.Namespace) -> int:
    async def work(conn: AsyncConnection) -> int:
        if await revoke_key(conn, args.key_id):
            print(f"revoked API key {args.key_id}", file=sys.stderr)
        else:
            print(f"API key {args.key_id} was already revoked", file=sys.stderr)
        return 0

    return await _in_transaction(args, work)


def _service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, choices=SERVICE_DATABASES)
    parser.add_argument("--database-url", help="overrides <SERVICE>_DATABASE_URL")


def add_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="create a key; prints it once")
    _service_arguments(create)
    create.add_argument("--name", required=True, help="who the key is for")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        required=True,
        choices=[scope.value for scope in register_service_scopes()],
        help="repeat for several scopes; admin implies all",
    )
    create.add_argument("--merchant", help="bind the key to this merchant only")
    create.set_defaults(run=keys_create)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    _service_arguments(listing)
    listing.add_argument("--active", action="store_true", help="hide revoked keys")
    listing.set_defaults(run=keys_list)

    revoke = actions.add_parser("revoke", help="revoke a key")
    _service_arguments(revoke)
    revoke.add_argument("key_id")
    revoke.set_defaults(run=keys_revoke)


COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    add_keys_commands,
    add_kafka_commands,
    add_invariant_commands,
    add_simulate_commands,
    add_backtest_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add_group in COMMAND_GROUPS:
        add_group(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Command = args.run
    try:
        return asyncio.run(command(args))
    except (CommandError, DomainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not is_transient(exc):
            raise
        what = "the broker" if type(exc).__module__.startswith("aiokafka") else "the database"
        print(f"error: cannot reach {what}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
