"""`loyalty backtest`: would the lapse alerts have been right? Replays the purchases known at
--as-of, evaluates every lapse rule and score, and compares with the --horizon days after.

    loyalty backtest --as-of 1997-09-30 --horizon 273 --transactions tests/data/cdnow_sample.txt
    loyalty backtest --as-of 2026-06-01 --horizon 90                 the alerts service's history
    loyalty backtest --as-of 2026-06-01 --horizon 90 --merchant m1 --set rhythm_multiple=4 --json

--set tries a threshold change (the names of PUT /v1/admin/thresholds) before making it.
The alerts service is imported when the command runs (it brings numpy and scipy).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.db import create_engine
from tooling.cli_env import CommandError, database_url


def _as_of(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _trial(settings: list[str]) -> Any:
    if not settings:
        return None
    from services.alerts.domain import thresholds

    values: dict[str, Any] = {}
    try:
        for item in settings:
            name, _, value = item.partition("=")
            values[name.strip()] = json.loads(value) if value else None
        return thresholds.ThresholdOverrides.model_validate(values)
    except ValueError as exc:  # bad JSON or a value out of range (pydantic's error is one)
        raise CommandError(f"--set: {exc}") from exc


async def backtest(args: argparse.Namespace) -> int:
    from services.alerts.backtest import service
    from services.alerts.domain import thresholds

    trial = _trial(args.set)
    started = time.perf_counter()
    if args.transactions is not None:
        if args.merchant is not None:
            raise CommandError("--merchant applies to the service's history, not to a file")
        try:
            log = service.read_transactions(Path(args.transactions))
        except (OSError, service.TransactionsError) as exc:
            raise CommandError(f"{args.transactions}: {exc}") from exc
        rules = service.rules_with(thresholds.ThresholdBook(), log.merchant_names, trial)
        result = service.backtest(log, args.as_of, args.horizon, rules)
    else:
        engine = create_engine(database_url("alerts", args.database_url))
        try:
            async with engine.connect() as conn:
                result = await service.backtest_from_database(
                    conn, args.as_of, args.horizon, merchant_id=args.merchant, trial=trial
                )
        finally:
            await engine.dispose()
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps(service.result_document(result, args.as_of), indent=2))
    else:
        print("\n".join(service.report_lines(result, args.as_of)))
        print(f"\n{result.overall.customers:,} customers backtested in {elapsed:.2f} s")
    return 0


def add_backtest_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backtest", help="score the lapse rules on past purchases (precision, recall, AUC)"
    )
    parser.add_argument("--as-of", type=_as_of, required=True, help="ISO date (UTC) or time")
    parser.add_argument("--horizon", type=float, required=True, help="days after --as-of")
    parser.add_argument("--transactions", help="a CSV or CDNOW-layout file instead of the service")
    parser.add_argument("--database-url", help="the alerts database (default: ALERTS_DATABASE_URL)")
    parser.add_argument("--merchant", help="only customers who bought at this merchant")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="try a threshold"
    )
    parser.add_argument("--json", action="store_true", help="the JSON document, not a table")
    parser.set_defaults(run=backtest)
