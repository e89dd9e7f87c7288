"""What a poll loop keeps of its object's body, for as long as the object lives.

The loop keeps the newest body of its object (`PollLoop.notice`): metadata and
spec for the next poll, and the status as stored, the base of the next diff.
As kopf hands it over, each body is its own tree of Python objects, parsed from
its own watch event: every key ("lastTransitionTime", "observedGeneration", ...)
and every repeated value ("True", a reason, a message, the same transition time
in seven conditions) is a string of its own, in every body. Two thirds of a
status's memory were such duplicates (`tests/unit/operator/test_kept_body.py`).

`kept_body` copies the body with equal strings shared (`sys.intern`: kept
alive by the bodies that use them, freed with the last one) and without
`metadata.managedFields`: server-side apply's field ownership, which nothing
here or in kopf reads, yet as Python objects about a third of a body. The copy
is a plain dict, so kopf's `Body` wrapper and its views are not kept either.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_SHARED_LENGTH", "kept_body"]

#: Longer strings (a message from the cloud, a last-applied configuration) are
#: rarely equal between objects: copied as they are, not looked up.
MAX_SHARED_LENGTH = 256


def _shared(value: Any) -> Any:
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= MAX_SHARED_LENGTH else value
    if isinstance(value, Mapping):
        return {sys.intern(str(key)): _shared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shared(item) for item in value]
    return value  # numbers, booleans, None


def kept_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `body` (a watch event's object) as a poll loop keeps it."""
    kept: dict[str, Any] = {}
    for key, value in body.items():
        if key == "metadata" and isinstance(value, Mapping):
            value = {name: item for name, item in value.items() if name != "managedFields"}
        kept[sys.intern(str(key))] = _shared(value)
    return kept
