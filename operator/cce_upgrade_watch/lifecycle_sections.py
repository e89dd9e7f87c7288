"""The lifecycle sections of `.status`, bounded exactly as the CRD's schema says. Pure.

The poll loop builds each section with `cce/lifecycle_views.py`, which already
cuts strings and lists; this module checks them once more against the shape
the CRD declares (`SECTION_SCHEMAS`, which a unit test compares with the CRD),
and does the same to what the API server holds, so a section that would make
the API server refuse the whole status is never written: unknown keys and
values of the wrong type are dropped, strings and lists are cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cce_upgrade_watch.cce.lifecycle_models import MAX_ERROR_CODES
from cce_upgrade_watch.cce.lifecycle_views import MAX_FINDINGS, MAX_RISKS
from cce_upgrade_watch.cce.models import MAX_STRING
from cce_upgrade_watch.cce.timestamps import format_rfc3339
from cce_upgrade_watch.lifecycle_parts import Part

__all__ = [
    "MAX_STATE_MESSAGE",
    "SECTION_SCHEMAS",
    "STATE_SCHEMA",
    "Bool",
    "Int",
    "ListOf",
    "Object",
    "Text",
    "Time",
    "clean",
    "parse_time",
]

#: `status.lifecycle.<part>.message`: why a part is unavailable.
MAX_STATE_MESSAGE = 512


@dataclass(frozen=True, slots=True)
class Text:
    """A string of at most `max_length` characters (longer ones are cut)."""

    max_length: int = MAX_STRING


@dataclass(frozen=True, slots=True)
class Int:
    """A non-negative integer."""


@dataclass(frozen=True, slots=True)
class Bool:
    """A boolean."""


@dataclass(frozen=True, slots=True)
class Time:
    """An RFC 3339 time (`format: date-time`), stored in UTC with a `Z`."""


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list of `item`s, at most `max_items` (the first ones are kept)."""

    item: Any
    max_items: int


@dataclass(frozen=True, slots=True)
class Object:
    """An object with only these properties."""

    properties: Mapping[str, Any]


_FINDING = Object(
    {
        "name": Text(),
        "kind": Text(),
        "group": Text(),
        "level": Text(),
        "phase": Text(),
        "message": Text(),
        "errorCodes": ListOf(Text(), MAX_ERROR_CODES),
        "riskSource": Object(
            {
                "deprecatedAPIs": ListOf(Object({"url": Text(), "userAgent": Text()}), MAX_RISKS),
                "nodes": ListOf(Text(), MAX_RISKS),
                "addons": ListOf(Text(), MAX_RISKS),
                "configurations": ListOf(Text(), MAX_RISKS),
            }
        ),
    }
)

_WINDOW = Object(
    {
        "weeklyPeriod": Text(),
        "startTime": Text(),
        "durationHours": Int(),
        "scope": Text(),
        "nextStart": Time(),
    }
)

#: The shape of each part's section (for `BACKUPS` a time, not an object).
SECTION_SCHEMAS: Mapping[Part, Any] = {
    Part.PRECHECK: Object(
        {
            "taskID": Text(),
            "phase": Text(),
            "clusterVersion": Text(),
            "targetVersion": Text(),
            "createdAt": Time(),
            "expireTime": Time(),
            "message": Text(),
            "fatal": Int(),
            "warning": Int(),
            "info": Int(),
            "findings": ListOf(_FINDING, MAX_FINDINGS),
            "findingsOmitted": Int(),
        }
    ),
    Part.PLANS: Object(
        {
            "planID": Text(),
            "targetVersion": Text(),
            "clusterVersion": Text(),
            "notBefore": Time(),
            "notAfter": Time(),
            "notBeforeDeadline": Time(),
            "phase": Text(),
        }
    ),
    Part.WINDOW: _WINDOW,
    Part.VERSIONS: Object(
        {
            "release": Text(),
            "patch": Text(),
            "suggestedPatch": Text(),
            "patchAvailable": Bool(),
            "targetVersions": ListOf(Text(), MAX_FINDINGS),
            "lastUpgrade": Object({"phase": Text(), "progress": Text(), "completionTime": Time()}),
        }
    ),
    Part.BACKUPS: Time(),
}

#: `status.lifecycle.<part>`.
STATE_SCHEMA = Object({"state": Text(32), "message": Text(MAX_STATE_MESSAGE)})


def clean(value: Any, schema: Any) -> Any | None:
    """`value` reduced to `schema`; None when nothing of it fits (an empty
    object or list counts as nothing)."""
    if isinstance(schema, Text):
        if not isinstance(value, str) or not value:
            return None
        if len(value) > schema.max_length:
            return value[: schema.max_length - 3] + "..."
        return value
    if isinstance(schema, Bool):
        return value if isinstance(value, bool) else None
    if isinstance(schema, Int):
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
        return value if ok else None
    if isinstance(schema, Time):
        moment = parse_time(value)
        return format_rfc3339(moment) if moment is not None else None
    if isinstance(schema, ListOf):
        if not isinstance(value, list | tuple):
            return None
        items = [clean(item, schema.item) for item in value]
        kept = [item for item in items if item is not None][: schema.max_items]
        return kept or None
    if isinstance(schema, Object):
        if not isinstance(value, Mapping):
            return None
        result = {}
        for key, child in schema.properties.items():
            cleaned = clean(value.get(key), child)
            if cleaned is not None:
                result[key] = cleaned
        return result or None
    raise TypeError(f"not a schema: {schema!r}")  # pragma: no cover - a programming error


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string (or a datetime) as an aware UTC datetime, else None."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and 0 < len(value) <= 64:
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None or "T" not in text.upper():
            return None  # RFC 3339 needs both the time and an offset
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
