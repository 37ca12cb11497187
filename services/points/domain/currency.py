"""Currencies: minor-unit exponents and the programme's exchange-rate table.

Amounts arrive as integer minor units plus an ISO 4217 code. To earn points they are turned
into an exact rational amount of the programme's currency (``Fraction``), so no rounding
happens before the single floor of the points formula.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from types import MappingProxyType

from services.points.domain.errors import InvalidRuleError, UnknownCurrencyError

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")

# ISO 4217 currencies whose minor unit is not the usual 1/100. Every other code has 2 decimals.
_NON_CENT_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
        **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
        **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
        **dict.fromkeys(("CLF", "UYW"), 4),
    }
)


def require_currency_code(code: str) -> str:
    """Refuse anything that is not three upper-case letters (an ISO 4217 shape)."""
    if not _CURRENCY_CODE.match(code):
        raise InvalidRuleError(f"{code!r} is not an ISO 4217 currency code")
    return code


@lru_cache(maxsize=512)  # a bad code raises, and an exception is never cached
def standard_exponent(currency: str) -> int:
    """Number of decimals of ``currency``'s minor unit per ISO 4217 (JPY 0, USD 2, KWD 3)."""
    return _NON_CENT_EXPONENTS.get(require_currency_code(currency), 2)


@dataclass(frozen=True)
class CurrencyRates:
    """A programme's currency table.

    ``rates[code]`` is how many units of the programme currency one unit of ``code`` is worth
    (e.g. programme EUR, ``{"USD": Decimal("0.92")}``). The programme currency itself is
    always known at rate 1. ``exponent_overrides`` lets an admin fix a minor-unit exponent the
    built-in ISO table gets wrong for a partner, without a deploy.
    """

    programme_currency: str = "EUR"
    rates: Mapping[str, Decimal] = field(default_factory=dict)
    exponent_overrides: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_currency_code(self.programme_currency)
        for code, rate in self.rates.items():
            require_currency_code(code)
            if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
                raise InvalidRuleError(f"rate for {code} must be a positive Decimal, got {rate!r}")
        for code, exponent in self.exponent_overrides.items():
            require_currency_code(code)
            if not 0 <= exponent <= 6:
                raise InvalidRuleError(f"exponent for {code} must be 0..6, got {exponent}")

    def exponent(self, currency: str) -> int:
        """Minor-unit exponent used for ``currency`` in this programme."""
        exponent = self.exponent_overrides.get(currency)
        return standard_exponent(currency) if exponent is None else exponent

    def rate(self, currency: str) -> Fraction:
        """Exact programme-currency value of one unit of ``currency``.

        Raises ``UnknownCurrencyError`` for a currency the programme does not list: guessing a
        rate would silently mint or destroy points, so the event is dead-lettered instead.
        """
        if currency == self.programme_currency:
            return Fraction(1)
        if currency not in self.rates:
            raise UnknownCurrencyError(currency)
        return Fraction(self.rates[currency])

    def to_programme_units(self, amount_minor: int | Fraction, currency: str) -> Fraction:
        """Exact value, in whole programme-currency units, of ``amount_minor`` of ``currency``.

        ``amount_minor`` may be a Fraction: a weighted basket (2x category) is not whole.
        """
        units = Fraction(amount_minor, 10 ** self.exponent(currency))
        if currency == self.programme_currency:
            return units  # rate 1: most orders, and the multiplication is not free
        return units * self.rate(currency)

    def to_programme_minor(self, amount_minor: int, currency: str) -> int:
        """Value in programme-currency minor units, rounded half to even.

        Used where an integer amount must be stored (tier spend); points use the exact
        ``to_programme_units`` instead so they are floored only once.
        """
        if currency == self.programme_currency:
            return amount_minor  # same currency, same exponent: already exact, nothing to round
        exact = self.to_programme_units(amount_minor, currency)
        return round(exact * Fraction(10 ** self.exponent(self.programme_currency)))
