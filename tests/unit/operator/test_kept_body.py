"""`kept_body`: what a poll loop keeps of its object's body is an equal copy,
without managedFields, whose strings are shared with every other body's."""

from __future__ import annotations

import asyncio
import copy
import json
import tracemalloc
from typing import Any

from cce_upgrade_watch.kept_body import MAX_SHARED_LENGTH, kept_body
from tests.unit.operator.test_pollloop import body
from tests.unit.operator.test_pollloop_lifecycle import World


def stored_body() -> dict[str, Any]:
    """A watch's body with the status the operator writes for an idle cluster."""

    async def first_status() -> dict[str, Any]:
        world = World(answers={"items": []})
        await world.loop.poll_once()
        return copy.deepcopy(world.writer.status)

    raw = body()
    raw["status"] = asyncio.run(first_status())
    raw["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    return raw


def parsed(raw: dict[str, Any]) -> dict[str, Any]:
    """As kopf hands it over: parsed from the event's JSON, strings of its own."""
    result: dict[str, Any] = json.loads(json.dumps(raw))
    return result


def test_the_copy_is_equal_but_for_managed_fields() -> None:
    raw = parsed(stored_body())
    kept = kept_body(raw)
    assert "managedFields" in raw["metadata"]  # the event's body is left as it was
    del raw["metadata"]["managedFields"]
    assert kept == raw
    assert type(kept) is dict


def test_equal_strings_of_two_bodies_are_one_object() -> None:
    first, second = kept_body(parsed(stored_body())), kept_body(parsed(stored_body()))
    one, other = first["status"]["conditions"][0], second["status"]["conditions"][0]
    assert one["message"] is other["message"]
    assert one["lastTransitionTime"] is other["lastTransitionTime"]
    assert next(iter(one)) is next(iter(other))  # keys too


def test_a_long_string_is_copied_as_it_is() -> None:
    raw = parsed(stored_body())
    raw["metadata"]["annotations"] = {"note": "x" * (MAX_SHARED_LENGTH + 1)}
    kept = kept_body(raw)
    assert kept["metadata"]["annotations"]["note"] is raw["metadata"]["annotations"]["note"]


def test_a_thousand_kept_bodies_take_under_half_the_memory_of_parsed_ones() -> None:
    text = json.dumps(stored_body())

    def traced(make: Any) -> int:
        tracemalloc.start()
        try:
            keep = [make() for _ in range(1000)]
            size, _ = tracemalloc.get_traced_memory()
            assert len(keep) == 1000
            return size
        finally:
            tracemalloc.stop()

    as_parsed = traced(lambda: json.loads(text))
    as_kept = traced(lambda: kept_body(json.loads(text)))
    assert as_kept < as_parsed / 2, (as_kept, as_parsed)
