"""Timestamps as the CCE API writes them, into timezone-aware UTC datetimes.

The upgrade-workflow API prints Go's `time.Time.String()` layout,
`2006-01-02 15:04:05.999999999 -0700 MST`: 0 to 9 fraction digits (trailing
zeros trimmed), any zone abbreviation (`UTC`, `CST`, or `+08` for zones without
one), optionally followed by a monotonic clock reading (` m=+0.000123001`) when
the server stringified `time.Now()`. Other Huawei APIs use RFC 3339
(`2018-09-05T01:10:59Z`). Both are accepted. A timestamp without any offset
(`2020-01-04T09:05:22.701000`, seen in some Huawei APIs) is read as UTC, the
zone Huawei's servers report in. Precision beyond microseconds is dropped.

Go prints an unset `time.Time` as `0001-01-01 00:00:00 +0000 UTC`; that, and any
time before 1970, means "absent" (None): no upgrade ran before 1970, and a year
below 1000 would not even survive a round trip through RFC 3339 formatters.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from cce_upgrade_watch.cce.errors import TimestampParseError

_GO_LAYOUT = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r" (?P<sign>[+-])(?P<hours>\d{2})(?P<minutes>\d{2})"
    r"(?: (?P<zone>[A-Za-z0-9+-]{1,10}))?"
    r"(?: m=[+-]\d+(?:\.\d+)?)?$"
)
_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?$"
)


#: Times before this are absent (Go's zero time is year 1).
EARLIEST_YEAR = 1970


def _build(date: str, time: str, fraction: str | None, offset: timedelta) -> datetime | None:
    microseconds = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        naive = datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M:%S")
        if naive.year < EARLIEST_YEAR:
            return None
        moment = naive.replace(microsecond=microseconds, tzinfo=timezone(offset)).astimezone(UTC)
        return moment if moment.year >= EARLIEST_YEAR else None
    except (ValueError, OverflowError) as exc:
        raise TimestampParseError(f"not a valid date or time: {date} {time}") from exc


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse either layout; `None` or an empty string mean absent.

    Raises `TimestampParseError` for anything else.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    match = _GO_LAYOUT.match(text)
    if match:
        sign = -1 if match["sign"] == "-" else 1
        hours, minutes = int(match["hours"]), int(match["minutes"])
        if hours > 23 or minutes > 59:
            raise TimestampParseError(f"bad zone offset in timestamp {text!r}")
        offset = sign * timedelta(hours=hours, minutes=minutes)
        return _build(match["date"], match["time"], match["fraction"], offset)
    match = _RFC3339.match(text)
    if match:
        raw = match["offset"]
        if raw is None or raw in ("Z", "z"):
            offset = timedelta(0)
        else:
            digits = raw[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:])
            if hours > 23 or minutes > 59:
                raise TimestampParseError(f"bad zone offset in timestamp {text!r}")
            offset = (-1 if raw[0] == "-" else 1) * timedelta(hours=hours, minutes=minutes)
        return _build(match["date"], match["time"], match["fraction"], offset)
    raise TimestampParseError(
        f"unrecognised timestamp {text[:64]!r}: expected RFC 3339 or Go's time.Time.String() layout"
    )


def format_rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, seconds precision plus microseconds when present.

    The year is always 4 digits (strftime's `%Y` leaves year 1 as `1`, which
    no RFC 3339 reader, the API server's `date-time` included, accepts).
    """
    moment = moment.astimezone(UTC)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"
