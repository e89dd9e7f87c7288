"""JSON shapes and timestamp layouts of the simulated API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cce_upgrade_watch.cce.timestamps import parse_timestamp
from cce_upgrade_watch.simulator.render import (
    error_body,
    format_go_time,
    format_rfc3339,
    render_list,
)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2023-11-24T08:39:15.894417", "2023-11-24 08:39:15.894417 +0000 UTC"),
        ("2023-11-24T08:39:15.894400", "2023-11-24 08:39:15.8944 +0000 UTC"),
        ("2023-11-24T08:39:15", "2023-11-24 08:39:15 +0000 UTC"),
    ],
)
def test_go_layout_trims_the_fraction_like_go(moment: str, expected: str) -> None:
    assert format_go_time(epoch(moment)) == expected


def test_rfc3339_layout() -> None:
    assert format_rfc3339(epoch("2023-11-24T08:39:15")) == "2023-11-24T08:39:15Z"
    assert format_rfc3339(epoch("2023-11-24T08:39:15.5")) == "2023-11-24T08:39:15.500000Z"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_both_layouts_parse_back_to_the_same_instant(moment: datetime) -> None:
    value = moment.replace(tzinfo=UTC).timestamp()
    for text in (format_go_time(value), format_rfc3339(value)):
        parsed = parse_timestamp(text)
        assert parsed is not None
        assert abs(parsed.timestamp() - value) < 1e-6


def test_single_item_shape_is_the_newest_bare_object_or_nothing() -> None:
    items = [{"metadata": {"uid": "old"}}, {"metadata": {"uid": "new"}}]
    assert render_list(items, "list")["items"] == items
    assert render_list(items, "single")["items"] == {"metadata": {"uid": "new"}}
    assert "items" not in render_list([], "single")
    assert render_list([], "list") == {"kind": "List", "apiVersion": "v3", "items": []}


def test_error_bodies_in_both_styles() -> None:
    assert error_body("cce", 404, "CCE.01404001", "gone") == {
        "error_code": "CCE.01404001",
        "error_msg": "gone",
    }
    status = error_body("status", 404, "CCE.01404001", "gone")
    assert status["errorCode"] == "CCE.01404001"
    assert status["errorMessage"] == status["message"] == "gone"
    assert (status["code"], status["reason"], status["kind"]) == (404, "NotFound", "Status")
    assert "error_code" not in status
