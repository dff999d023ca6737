"""Values written as Java writes them, since ksqlDB's outputs are Java's text."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal


def java_double(x: float) -> str:
    """Java's Double.toString: plain in [1e-3, 1e7), else d.dddE±n; at least one fraction digit."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    d = Decimal(repr(x))
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    if len(digits) == 1:
        # Java renders at least two digits and picks the two-digit decimal nearest the double
        exact = Decimal(x)
        two = exact.scaleb(-exact.adjusted()).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
        d = two.scaleb(exact.adjusted())
        sign, digits, exp = d.normalize().as_tuple()
        assert isinstance(exp, int)
    digits_text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + exp  # digits before the decimal point
    neg = "-" if sign else ""
    if 1e-3 <= abs(x) < 1e7:
        if point <= 0:
            return f"{neg}0.{'0' * -point}{digits_text}"
        whole = digits_text[:point].ljust(point, "0")
        frac = digits_text[point:] or "0"
        return f"{neg}{whole}.{frac}"
    return f"{neg}{digits_text[0]}.{digits_text[1:] or '0'}E{point - 1}"
