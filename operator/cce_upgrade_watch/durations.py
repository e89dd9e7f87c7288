"""Go-style duration strings (`30s`, `5m`, `1h30m`, `1.5h`, `500ms`), as Flux and Argo CD use.

The grammar and the limits are those of Go's `time.ParseDuration`, because the
CRD checks the same strings with CEL's `duration()`, which is Go's parser: a
string the API server accepts must parse here too, and the other way round.
Durations are counted in whole nanoseconds, exactly as Go does, so
`parse_duration_ns` loses nothing; `parse_duration` rounds to the microsecond
resolution of `timedelta`.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "MAX_DURATION_NS",
    "format_duration",
    "parse_duration",
    "parse_duration_ns",
    "parse_duration_seconds",
]

#: Go's `time.Duration` is an int64 count of nanoseconds.
MAX_DURATION_NS = (1 << 63) - 1

_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, what Go itself prints
    "\u03bcs": 1_000,  # Greek small letter mu, which Go accepts too
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_UNIT_NAMES = "ns, us (or µs), ms, s, m, h"
_DIGITS = frozenset("0123456789")


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration string into nanoseconds.

    Accepts what `time.ParseDuration` accepts: an optional sign, then one or more
    decimal numbers each followed by a unit (`1h30m`, `1.5h`, `.5s`, `2h45m30.5s`),
    or a bare `0`. Raises `ValueError` saying what is wrong.
    """
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string such as '5m', not {type(text).__name__}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {text!r}: empty (expected e.g. '30s', '5m', '1h30m')")

    total = 0
    while rest:
        integer, rest = _take_digits(rest)
        fraction = ""
        if rest.startswith("."):
            fraction, rest = _take_digits(rest[1:])
            has_fraction = True
        else:
            has_fraction = False
        if not integer and not fraction:
            raise ValueError(f"invalid duration {text!r}: expected a number before each unit")

        unit_end = 0
        while unit_end < len(rest) and rest[unit_end] != "." and rest[unit_end] not in _DIGITS:
            unit_end += 1
        unit, rest = rest[:unit_end], rest[unit_end:]
        if not unit:
            number = integer + ("." + fraction if has_fraction else "")
            raise ValueError(
                f"invalid duration {text!r}: missing unit after {number!r} (units: {_UNIT_NAMES})"
            )
        scale = _UNIT_NS.get(unit)
        if scale is None:
            raise ValueError(
                f"invalid duration {text!r}: unknown unit {unit!r} (units: {_UNIT_NAMES})"
            )
        # Integer arithmetic throughout, as Go does, so 0.1s is exactly 100ms.
        part = int(integer or "0") * scale
        if fraction:
            part += int(fraction) * scale // 10 ** len(fraction)
        total += part
        if total > MAX_DURATION_NS:
            raise ValueError(f"invalid duration {text!r}: longer than Go's limit of about 2562047h")
    return -total if negative else total


def _take_digits(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    return text[:end], text[end:]


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string into a `timedelta` (rounded to whole microseconds)."""
    nanoseconds = parse_duration_ns(text)
    return timedelta(microseconds=round(nanoseconds / 1000))


def parse_duration_seconds(text: str) -> float:
    """Parse a Go duration string into seconds, e.g. for `asyncio.wait_for`."""
    return parse_duration_ns(text) / 1e9


def format_duration(value: timedelta | int, *, compact: bool = False) -> str:
    """Format like Go's `Duration.String()`: `5m0s`, `1h30m0s`, `1.5s`, `500ms`, `0s`.

    `value` is a `timedelta` or a whole number of nanoseconds. With `compact`,
    zero components are left out (`5m`, `24h`, `1h30m`), the way people write
    them in a spec. Either way the output parses back to the same value.
    """
    if isinstance(value, timedelta):
        nanoseconds = (
            value.days * 86_400 + value.seconds
        ) * 1_000_000_000 + value.microseconds * 1_000
    else:
        nanoseconds = int(value)
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    magnitude = abs(nanoseconds)

    if magnitude < 1_000_000_000:
        # Below a second Go picks the largest unit that keeps the integer part non-zero.
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if magnitude >= scale:
                return sign + _decimal(magnitude, scale) + unit
    hours, remainder = divmod(magnitude, 3600 * 1_000_000_000)
    minutes, remainder = divmod(remainder, 60 * 1_000_000_000)
    seconds = _decimal(remainder, 1_000_000_000) + "s"
    if compact:
        parts = [(hours, "h"), (minutes, "m")]
        text = "".join(f"{amount}{unit}" for amount, unit in parts if amount)
        return sign + text + (seconds if remainder else "")
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _decimal(amount: int, scale: int) -> str:
    whole, fraction = divmod(amount, scale)
    if not fraction:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{str(fraction).rjust(digits, '0').rstrip('0')}"
