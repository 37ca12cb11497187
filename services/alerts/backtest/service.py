"""The backtest as people run it: from a transactions file or the service's purchase history,
to a printed table or a JSON document. The numerics live in `domain.backtest`.

Transactions files (`loyalty backtest --transactions FILE`), one purchase per line:
* CSV with a header naming `customer_id`, `date` (ISO date or RFC 3339 time; a date is
  midnight UTC), `amount` (decimal, major units) and optionally `merchant_id`;
* the CDNOW layout (whitespace separated: customer id, sample id, yyyymmdd, units, dollars),
  the published CDNOW data set's own format: the sample id is the customer.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.activity.repository import PurchaseHistoryRepository
from services.alerts.domain.backtest import (
    ALL_MERCHANTS,
    BacktestResult,
    PurchaseLog,
    Scorecard,
    run_backtest,
)
from services.alerts.domain.lapse import LapseRules
from services.alerts.domain.thresholds import ThresholdBook, ThresholdOverrides, merged
from services.alerts.thresholds.repository import ThresholdRepository

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)


class TransactionsError(ValueError):
    """A transactions file that cannot be read; names the line and what is wrong."""


class TrialRefused(ValueError):
    """Threshold changes to try that contradict the thresholds in force (lapsed before risk)."""


@dataclass(frozen=True, slots=True)
class Purchase:
    customer_id: str
    at: datetime
    amount_minor: int
    merchant_id: str = ""


def day_number(moment: datetime) -> float:
    """Days since 1970-01-01 UTC (the backtest's time axis)."""
    if moment.tzinfo is None:
        raise TransactionsError(f"time {moment.isoformat()} carries no time zone")
    return (moment - EPOCH) / _DAY


def purchase_log(purchases: Iterable[Purchase]) -> PurchaseLog:
    rows = list(purchases)
    customers = {c: i for i, c in enumerate(sorted({p.customer_id for p in rows}))}
    merchants = sorted({p.merchant_id for p in rows}) or [""]
    merchant_code = {m: i for i, m in enumerate(merchants)}
    return PurchaseLog(
        customer=np.array([customers[p.customer_id] for p in rows], dtype=np.int64),
        day=np.array([day_number(p.at) for p in rows], dtype=np.float64),
        amount_minor=np.array([p.amount_minor for p in rows], dtype=np.int64),
        merchant=np.array([merchant_code[p.merchant_id] for p in rows], dtype=np.int64),
        merchant_names=tuple(merchants),
    )


def read_transactions(path: Path) -> PurchaseLog:
    """Purchases from a CSV or CDNOW-layout file (see the module docstring)."""
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
        handle.seek(0)
        if "," in first:
            return purchase_log(_csv_purchases(handle))
        return purchase_log(_cdnow_purchases(handle))


def _cdnow_purchases(lines: Iterable[str]) -> Iterable[Purchase]:
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            _, customer, yyyymmdd, _, dollars = fields
            when = datetime.strptime(yyyymmdd, "%Y%m%d").replace(tzinfo=UTC)
            yield Purchase(customer.lstrip("0") or "0", when, _minor(dollars), "")
        except (ValueError, InvalidOperation) as exc:
            raise TransactionsError(f"line {number}: not a CDNOW purchase: {line!r}") from exc


def _csv_purchases(lines: Iterable[str]) -> Iterable[Purchase]:
    reader = csv.DictReader(lines)
    missing = {"customer_id", "date", "amount"} - set(reader.fieldnames or ())
    if missing:
        raise TransactionsError(f"the header lacks {', '.join(sorted(missing))}")
    for number, row in enumerate(reader, start=2):
        try:
            yield Purchase(
                row["customer_id"],
                _moment(row["date"]),
                _minor(row["amount"]),
                row.get("merchant_id") or "",
            )
        except (ValueError, InvalidOperation) as exc:
            raise TransactionsError(f"line {number}: {exc}") from exc


def _moment(text: str) -> datetime:
    text = text.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} needs a time zone")
    return moment


def _minor(text: str) -> int:
    # Money is never a float: parse the decimal text, then count cents exactly.
    amount = Decimal(text.strip())
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"amount {text!r} must be a non-negative number")
    return int((amount * 100).to_integral_value())


def backtest(
    log: PurchaseLog,
    as_of: datetime,
    horizon_days: float,
    rules_by_merchant: Mapping[str, LapseRules] | None = None,
) -> BacktestResult:
    return run_backtest(
        log, day_number(as_of), horizon_days, rules_by_merchant or {ALL_MERCHANTS: LapseRules()}
    )


def result_document(result: BacktestResult, as_of: datetime) -> dict[str, Any]:
    """The result as JSON-ready data (what the admin endpoint answers)."""
    model = result.model
    return {
        "as_of": as_of.isoformat(),
        "horizon_days": result.horizon_days,
        "model": None
        if model is None
        else {
            "r": model.r,
            "alpha": model.alpha,
            "a": model.a,
            "b": model.b,
            "time_unit_days": model.unit_days,
            "log_likelihood": model.log_likelihood,
            "customers_fitted": model.n_customers,
        },
        "hindsight_ceiling_auc": result.hindsight_ceiling_auc,
        "overall": _card(result.overall),
        "by_merchant": [_card(card) for card in result.by_merchant],
    }


def _card(card: Scorecard) -> dict[str, Any]:
    return {
        "merchant_id": card.merchant,
        "customers": card.customers,
        "lapsed": card.lapsed,
        "base_rate": card.base_rate,
        "rules": [asdict(rule) for rule in card.rules],
        "scores": [asdict(score) for score in card.scores],
        "suggested_threshold": None if card.suggested is None else asdict(card.suggested),
    }


def report_lines(result: BacktestResult, as_of: datetime) -> list[str]:
    """A plain-text report: the model, then one table per scorecard."""
    lines = [f"backtest as of {as_of.isoformat()}, horizon {result.horizon_days:g} days"]
    model = result.model
    if model is not None:
        lines.append(
            f"BG/NBD refitted on the data known then: r {model.r:.4f}, alpha {model.alpha:.4f}"
            f" weeks, a {model.a:.4f}, b {model.b:.4f}, LL {model.log_likelihood:.2f}"
        )
    if result.hindsight_ceiling_auc is not None:
        lines.append(
            f"hindsight AUC {result.hindsight_ceiling_auc:.3f}: a logistic regression fitted on"
            " the outcome itself (recency, frequency, age, spend), a practical ceiling for any"
            " score that cannot see the future"
        )
    for card in (result.overall, *result.by_merchant):
        if card is not result.overall and len(result.by_merchant) == 1:
            break  # one merchant: its table is the overall one
        lines.extend(_card_lines(card))
    return lines


def _card_lines(card: Scorecard) -> Sequence[str]:
    name = "all merchants" if card.merchant == ALL_MERCHANTS else f"merchant {card.merchant}"
    lines = [
        "",
        f"{name}: {card.customers:,} customers, {card.lapsed:,} lapsed"
        f" (base rate {_num(card.base_rate)})",
        f"{'rule':<36}{'on':>4}{'flagged':>9}{'precision':>11}{'recall':>8}{'lift':>7}"
        f"{'value recall':>14}",
    ]
    for rule in card.rules:
        lines.append(
            f"{rule.name:<36}{'yes' if rule.enabled else 'no':>4}{rule.flagged:>9,}"
            f"{_num(rule.precision):>11}{_num(rule.recall):>8}{_num(rule.lift):>7}"
            f"{_num(rule.value_recall):>14}"
        )
    lines.append(f"{'score':<36}{'AUC':>8}")
    lines.extend(f"{score.name:<36}{_num(score.auc):>8}" for score in card.scores)
    if card.suggested is not None:
        s = card.suggested
        lines.append(
            f"suggested at_risk_no_purchase_probability: {s.no_purchase_probability:.3f}"
            f" ({s.criterion}: precision {s.precision:.3f}, recall {s.recall:.3f})"
        )
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def rules_with(
    book: ThresholdBook, merchants: Iterable[str], trial: ThresholdOverrides | None
) -> dict[str, LapseRules]:
    """Each merchant's rules in force (default <- merchant; categories are not replayed), with
    the `trial` overrides on top: what a merchant would get if they made that change."""
    try:
        rules = {ALL_MERCHANTS: merged(book.default, trial).rules}
        for merchant in merchants:
            rules[merchant] = merged(book.default, book.by_merchant.get(merchant), trial).rules
    except ValueError as exc:
        raise TrialRefused(str(exc)) from exc
    return rules


async def backtest_from_database(
    conn: AsyncConnection,
    as_of: datetime,
    horizon_days: float,
    *,
    merchant_id: str | None = None,
    trial: ThresholdOverrides | None = None,
) -> BacktestResult:
    """The backtest on the service's own purchase history (what `purchase_history` holds).

    With `merchant_id`, only the customers who ever bought there are replayed; the overall
    scorecard is then theirs. Runs in a worker thread: numerics must not block the loop.
    """
    until = as_of + timedelta(days=horizon_days)
    purchases = await PurchaseHistoryRepository(conn).until(until, merchant_id)
    book = await ThresholdRepository(conn).book()
    log = purchase_log(
        Purchase(p.customer_id, p.purchased_at, p.amount_minor, p.merchant_id) for p in purchases
    )
    rules = rules_with(book, log.merchant_names, trial)
    return await asyncio.to_thread(backtest, log, as_of, horizon_days, rules)
