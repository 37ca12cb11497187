"""Human-friendly codes with a check character, for vouchers and referrals.

The alphabet leaves out the characters people confuse when reading a code off
a receipt or a screen (0 and O, 1, I and L). It has 31 characters, a prime,
which lets a weighted check character catch every single mistyped character and
every swap of two neighbours (including a swap with the check character): the
weighted sum of the whole code, weights 1, 2, 3, ..., is 0 modulo 31, and no
weight up to 30 shares a factor with 31.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

from services.rewards.domain.errors import InvalidCodeError

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_BASE = len(ALPHABET)
_VALUE = {char: index for index, char in enumerate(ALPHABET)}
MAX_PAYLOAD_LENGTH = _BASE - 2  # the check character's weight must stay below 31

Chooser = Callable[[str], str]
"""Picks one character of a string (tests); codes are drawn from `secrets` otherwise."""


def entropy_bits(payload_length: int) -> float:
    """Bits of randomness in a code with `payload_length` random characters."""
    return payload_length * math.log2(_BASE)


def check_character(payload: str) -> str:
    """The character that makes the weighted sum of `payload` + it equal 0 modulo 31."""
    if not 0 < len(payload) <= MAX_PAYLOAD_LENGTH:
        raise InvalidCodeError(f"a code carries 1 to {MAX_PAYLOAD_LENGTH} characters")
    total = sum((i + 1) * _VALUE[char] for i, char in enumerate(payload))
    weight = len(payload) + 1
    return ALPHABET[(-total * pow(weight, -1, _BASE)) % _BASE]


def random_code(payload_length: int, choose: Chooser | None = None) -> str:
    """A fresh code: `payload_length` random characters followed by the check character.

    Without `choose`, one uniform draw below 31**length from `secrets`, written in base 31:
    the same distribution as a `secrets.choice` per character, for one read of the
    system's random source instead of one per character (a compensation batch issues a
    voucher per incident; `python -m bench rewards`).
    """
    if choose is not None:
        payload = "".join(choose(ALPHABET) for _ in range(payload_length))
    else:
        value, characters = secrets.randbelow(_BASE**payload_length), []
        for _ in range(payload_length):
            value, digit = divmod(value, _BASE)
            characters.append(ALPHABET[digit])
        payload = "".join(characters)
    return payload + check_character(payload)


def normalise_code(text: str) -> str:
    """Upper-case `text` and drop the spaces and hyphens people type for readability."""
    return "".join(char for char in text.upper() if char not in " -")


def parse_code(text: str, payload_length: int, what: str) -> str:
    """The canonical code in `text`, or raise if it is malformed or mistyped."""
    code = normalise_code(text)
    if len(code) != payload_length + 1:
        raise InvalidCodeError(f"a {what} has {payload_length + 1} characters")
    if any(char not in _VALUE for char in code):
        raise InvalidCodeError(f"a {what} uses only the characters {ALPHABET}")
    if check_character(code[:-1]) != code[-1]:
        raise InvalidCodeError(f"this {what} looks mistyped (its check character does not match)")
    return code


def display_code(code: str, group: int = 6) -> str:
    """`code` split into hyphenated groups for printing, e.g. ABCDEF-GHJKMN-PQRSTV."""
    return "-".join(code[i : i + group] for i in range(0, len(code), group))
