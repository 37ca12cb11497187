"""Money at the edge (decimal strings + ISO 4217) and inside (integer minor units).

A float never represents money here: amounts arrive as strings, are parsed with
`Decimal`, checked against the currency's minor-unit exponent, and leave this
module as `int` minor units.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# ISO 4217 active codes. Exponent 2 unless listed in the exception tables below.
_ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)
_EXPONENT_0 = frozenset("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split())
_EXPONENT_3 = frozenset("BHD IQD JOD KWD LYD OMR TND".split())

# ASCII digits only, over the whole text: Python's `\d` also takes other scripts' digits
# (Arabic-Indic "12.50"), `$` a final newline, and `Decimal` reads both, while the
# published schemas' pattern (an ECMA-262 regular expression) refuses them.
_DECIMAL_TEXT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,6})?")


class MoneyError(ValueError):
    """An amount or currency that breaks a rule; the message names the rule."""


def known_currencies() -> frozenset[str]:
    """Every active ISO 4217 code."""
    return _ISO_4217


def is_known_currency(code: str) -> bool:
    """True for an active ISO 4217 code (upper case, three letters)."""
    return code in _ISO_4217


def currency_exponent(code: str) -> int:
    """Number of minor-unit digits of `code` (JPY 0, EUR 2, KWD 3)."""
    if code not in _ISO_4217:
        raise MoneyError(f"unknown currency {code!r}: expected an ISO 4217 code such as EUR")
    if code in _EXPONENT_0:
        return 0
    if code in _EXPONENT_3:
        return 3
    return 2


def parse_decimal_text(text: str) -> Decimal:
    """Parse a decimal string; reject exponents, NaN, infinities and over-long numbers."""
    if not _DECIMAL_TEXT.fullmatch(text):
        raise MoneyError(f"{text!r} is not a decimal string like '12.50'")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise MoneyError(f"{text!r} is not a decimal number") from exc


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Convert a decimal amount to integer minor units, refusing sub-minor precision."""
    exponent = currency_exponent(currency)
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more decimals than {currency} allows ({exponent})")
    return int(scaled)


def from_minor_units(minor: int, currency: str) -> Decimal:
    """The decimal amount of `minor` units of `currency`, for display at the edge."""
    return Decimal(minor).scaleb(-currency_exponent(currency))


def format_money(minor: int, currency: str) -> str:
    """A decimal string with exactly the currency's number of decimals."""
    exponent = currency_exponent(currency)
    return f"{from_minor_units(minor, currency):.{exponent}f}"
