"""Go-style durations: the same grammar as Go's time.ParseDuration (and CEL's duration())."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.durations import (
    MAX_DURATION_NS,
    format_duration,
    parse_duration,
    parse_duration_ns,
    parse_duration_seconds,
)

SECOND = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("30s", 30 * SECOND),
        ("5m", 300 * SECOND),
        ("1h30m", 5400 * SECOND),
        ("1.5h", 5400 * SECOND),
        ("500ms", SECOND // 2),
        ("2h45m30.5s", (2 * 3600 + 45 * 60 + 30) * SECOND + SECOND // 2),
        ("1ns", 1),
        ("3us", 3000),
        ("3µs", 3000),  # micro sign, as Go prints it
        ("3μs", 3000),  # Greek mu, which Go accepts too
        ("0", 0),
        ("0s", 0),
        (".5s", SECOND // 2),
        ("1.s", SECOND),
        ("1h1h", 7200 * SECOND),  # Go sums repeated units
        ("+5m", 300 * SECOND),
        ("-1m30s", -90 * SECOND),
        ("0.1s", SECOND // 10),  # exact: integer arithmetic, no float drift
    ],
)
def test_parses_what_go_parses(text: str, nanoseconds: int) -> None:
    assert parse_duration_ns(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("-", "empty"),
        ("5", "missing unit after '5'"),
        ("1d", "unknown unit 'd'"),
        ("5 m", "unknown unit ' m'"),
        ("1h 30m", "unknown unit 'h '"),
        ("s", "expected a number before each unit"),
        (".s", "expected a number before each unit"),
        ("5M", "unknown unit 'M'"),
        ("9999999999h", "longer than Go's limit"),
    ],
)
def test_rejects_with_a_message_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration_ns(text)
    assert problem in str(caught.value)
    assert repr(text) in str(caught.value)


def test_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_duration_ns(30)  # type: ignore[arg-type]


def test_timedelta_and_seconds() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("1500us") == timedelta(microseconds=1500)
    assert parse_duration_seconds("2m30s") == 150.0


@pytest.mark.parametrize(
    ("value", "go", "compact"),
    [
        (timedelta(minutes=5), "5m0s", "5m"),
        (timedelta(hours=1, minutes=30), "1h30m0s", "1h30m"),
        (timedelta(hours=24), "24h0m0s", "24h"),
        (timedelta(seconds=10), "10s", "10s"),
        (timedelta(hours=2, minutes=45, seconds=30, milliseconds=500), "2h45m30.5s", "2h45m30.5s"),
        (timedelta(milliseconds=500), "500ms", "500ms"),
        (timedelta(microseconds=1500), "1.5ms", "1.5ms"),
        (timedelta(0), "0s", "0s"),
        (-timedelta(seconds=90), "-1m30s", "-1m30s"),
        (1, "1ns", "1ns"),
        (1500, "1.5µs", "1.5µs"),
    ],
)
def test_formats_like_go(value: timedelta | int, go: str, compact: str) -> None:
    assert format_duration(value) == go
    assert format_duration(value, compact=True) == compact


@settings(max_examples=200)
@given(st.integers(-MAX_DURATION_NS, MAX_DURATION_NS), st.booleans())
def test_format_parses_back(nanoseconds: int, compact: bool) -> None:
    assert parse_duration_ns(format_duration(nanoseconds, compact=compact)) == nanoseconds


UNITS = {"ns": 1, "us": 1000, "ms": 10**6, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1))
def test_sums_components(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{amount}{unit}" for amount, unit in parts)
    expected = sum(amount * UNITS[unit] for amount, unit in parts)
    if expected > MAX_DURATION_NS:
        with pytest.raises(ValueError, match="limit"):
            parse_duration_ns(text)
    else:
        assert parse_duration_ns(text) == expected
