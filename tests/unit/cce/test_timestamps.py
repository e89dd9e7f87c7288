"""Both timestamp layouts the CCE APIs use, into timezone-aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.cce.errors import TimestampParseError
from cce_upgrade_watch.cce.timestamps import format_rfc3339, parse_timestamp


def utc(year: int, month: int, day: int, *clock: int) -> datetime:
    hour, minute, second, micro = (*clock, 0, 0, 0, 0)[:4]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Go's time.Time.String(): 0 to 9 fraction digits, any zone abbreviation.
        ("2023-11-24 08:39:15.894417 +0000 UTC", utc(2023, 11, 24, 8, 39, 15, 894417)),
        ("2023-11-24 08:39:15 +0000 UTC", utc(2023, 11, 24, 8, 39, 15)),
        ("2023-11-24 08:39:15.8 +0000 UTC", utc(2023, 11, 24, 8, 39, 15, 800000)),
        ("2023-11-24 08:39:15.123456789 +0000 UTC", utc(2023, 11, 24, 8, 39, 15, 123456)),
        ("2023-11-24 16:39:15.5 +0800 CST", utc(2023, 11, 24, 8, 39, 15, 500000)),
        ("2023-11-24 05:09:15 -0330 NST", utc(2023, 11, 24, 8, 39, 15)),
        ("2023-11-24 11:39:15 +0300 +03", utc(2023, 11, 24, 8, 39, 15)),
        ("2023-11-24 08:39:15 +0000", utc(2023, 11, 24, 8, 39, 15)),
        # ... with the monotonic clock reading of time.Now().
        (
            "2023-11-24 08:39:15.894417 +0000 UTC m=+0.000123001",
            utc(2023, 11, 24, 8, 39, 15, 894417),
        ),
        ("2023-11-24 08:39:15 +0000 UTC m=-12.5", utc(2023, 11, 24, 8, 39, 15)),
        # RFC 3339.
        ("2018-09-05T01:10:59Z", utc(2018, 9, 5, 1, 10, 59)),
        ("2020-01-04T09:05:22.701000Z", utc(2020, 1, 4, 9, 5, 22, 701000)),
        ("2020-01-04T17:05:22+08:00", utc(2020, 1, 4, 9, 5, 22)),
        ("2020-01-04t09:05:22z", utc(2020, 1, 4, 9, 5, 22)),
        # No offset at all: Huawei servers report UTC.
        ("2020-01-04T09:05:22.701000", utc(2020, 1, 4, 9, 5, 22, 701000)),
    ],
)
def test_parses_both_layouts(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_means_absent(text: str | None) -> None:
    assert parse_timestamp(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2023-11-24",
        "2023-13-24 08:39:15 +0000 UTC",
        "2023-02-30T00:00:00Z",
        "2023-11-24 25:39:15 +0000 UTC",
        "2023-11-24 08:39:15.1234567890 +0000 UTC",
        "2023-11-24 08:39:15 +2500 UTC",
        "0000-01-01T00:00:00Z",
        "1700000000",
    ],
)
def test_rejects_anything_else(text: str) -> None:
    with pytest.raises(TimestampParseError):
        parse_timestamp(text)


def test_formats_rfc3339_utc() -> None:
    assert format_rfc3339(utc(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05Z"
    local = datetime(2024, 1, 2, 11, 4, 5, 120000, tzinfo=timezone(timedelta(hours=8)))
    assert format_rfc3339(local) == "2024-01-02T03:04:05.120000Z"


def _go_string(moment: datetime, digits: int, zone: str) -> str:
    # What Go's time.Time.String() prints: trailing zeros of the fraction trimmed.
    fraction = f"{moment.microsecond:06d}000"[:digits].rstrip("0")
    offset = moment.strftime("%z")
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S")
        + (f".{fraction}" if fraction else "")
        + (f" {offset} {zone}")
    )


@settings(max_examples=150, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))]
        ),
    ),
    digits=st.integers(0, 9),
    zone=st.sampled_from(["UTC", "CST", "+08", "-0330"]),
    monotonic=st.booleans(),
)
def test_go_layout_round_trips(moment: datetime, digits: int, zone: str, monotonic: bool) -> None:
    text = _go_string(moment, digits, zone) + (" m=+3.000123001" if monotonic else "")
    kept = min(digits, 6)
    expected = moment.replace(microsecond=int(f"{moment.microsecond:06d}"[:kept].ljust(6, "0")))
    assert parse_timestamp(text) == expected
    assert parse_timestamp(format_rfc3339(expected)) == expected


# -- Go's zero time (issue 10.2) ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01 00:00:00 +0000 UTC",  # an unset time.Time, as Go prints it
        "0001-01-01T00:00:00Z",
        "0001-01-01 08:00:00 +0800 CST",
        "1969-12-31T23:59:59Z",
        "1970-01-01 00:30:00 +0100 CET",  # 1969 in UTC
    ],
)
def test_go_zero_time_and_anything_before_1970_is_absent(text: str) -> None:
    assert parse_timestamp(text) is None


def test_the_epoch_itself_is_a_time() -> None:
    assert parse_timestamp("1970-01-01T00:00:00Z") == utc(1970, 1, 1)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(999, 12, 31, 23, 59, 59, 5, tzinfo=UTC), "0999-12-31T23:59:59.000005Z"),
        (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00Z"),
    ],
)
def test_the_formatter_pads_the_year_to_4_digits(moment: datetime, text: str) -> None:
    assert format_rfc3339(moment) == text
    # What the API server's `format: date-time` (RFC 3339) accepts.
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", text)


@settings(max_examples=150, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    )
)
def test_formatted_times_are_rfc3339_for_any_year(moment: datetime) -> None:
    text = format_rfc3339(moment)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z", text)
    parsed = parse_timestamp(text)
    assert parsed == (moment if moment.year >= 1970 else None)
