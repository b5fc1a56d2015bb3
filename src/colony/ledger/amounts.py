"""Amounts: integers of micro-credits end to end; a human amount is parsed once, at the edge.

One credit is 1,000,000 micro-credits. Floats never touch an amount: ``"0.1"`` parsed as a float
and multiplied is 99,999.99… on some inputs, and a ledger that rounds is a ledger that leaks.
`parse_amount` reads decimal text exactly (``"1.5"``, ``"0.000001"``, ``"12"``, ``"2500u"`` for
micro-credits written out) and refuses anything finer than a micro-credit rather than round it.
"""

from __future__ import annotations

import re

__all__ = ["MAX_AMOUNT", "MICRO", "format_amount", "parse_amount"]

#: Micro-credits per credit.
MICRO = 1_000_000
#: The largest amount one operation may move: 2**53 - 1 micro-credits (about 9 billion credits),
#: so every amount survives a JSON round trip through a JavaScript client unchanged.
MAX_AMOUNT = 2**53 - 1

_DECIMAL = re.compile(r"^(?P<whole>\d{1,16})(?:\.(?P<frac>\d{1,6}))?$")
_MICROS = re.compile(r"^(?P<micro>\d{1,16})u$")


def parse_amount(text: str | int) -> int:
    """Micro-credits from ``"1.25"`` (credits) or ``"1250000u"`` (micro-credits); ValueError otherwise.

    An ``int`` is taken as micro-credits already (the API's JSON amounts). Zero, negatives, more
    than six decimals, exponents, separators and anything over `MAX_AMOUNT` are refused with a
    message that says what would be accepted.
    """
    if isinstance(text, bool):
        raise ValueError("an amount is a number of credits, not true/false")
    if isinstance(text, int):
        value = text
    else:
        raw = text.strip()
        if (m := _MICROS.match(raw)) is not None:
            value = int(m["micro"])
        elif (m := _DECIMAL.match(raw)) is not None:
            value = int(m["whole"]) * MICRO + int((m["frac"] or "").ljust(6, "0") or 0)
        else:
            raise ValueError(
                f"{text!r} is not an amount: write credits with at most 6 decimals (1.5, 0.000001) "
                "or micro-credits with a u suffix (1500000u)"
            )
    if value <= 0:
        raise ValueError(f"an amount must be more than zero (got {format_amount(value)} credits)")
    if value > MAX_AMOUNT:
        raise ValueError(f"an amount may not exceed {format_amount(MAX_AMOUNT)} credits")
    return value


def format_amount(micro: int) -> str:
    """``1500000`` → ``"1.5"``; ``1`` → ``"0.000001"``; exact, no rounding, no exponent."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    return f"{sign}{whole}" + (f".{frac:06d}".rstrip("0") if frac else "")
