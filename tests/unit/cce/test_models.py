"""Tolerant parsing of the workflow list, and a parser that fails only one way."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.cce.errors import CceError, WorkflowParseError
from cce_upgrade_watch.cce.models import (
    ACTIVE_PHASES,
    MAX_LIST_ITEMS,
    MAX_STRING,
    Phase,
    TaskStatus,
    UpgradeWorkflowList,
    parse_workflow_list,
)
from cce_upgrade_watch.cce.views import workflow_to_status_dict
from tests.unit.cce.conftest import workflow, workflow_list

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")

FUZZ_EXAMPLES = 300

SEED_PAGE = Path("/work/shared/seed/000_f29b8136f440bb85.txt")

# The doc page's example response, verbatim: `items` is a single object.
DOC_EXAMPLE = """{
  "apiVersion" : "v3",
  "kind" : "List",
  "items" : {
    "kind" : "WorkFlowTask",
    "apiVersion" : "v3",
    "metadata" : {
      "uid" : "730f5577-38ef-448c-b4a7-c6878fbefdda",
      "creationTimestamp" : "2023-11-24 08:39:15.894417 +0000 UTC",
      "updateTimestamp" : "2023-11-25 02:57:25.718567 +0000 UTC"
    },
    "spec" : {
      "clusterID" : "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
      "clusterVersion" : "v1.17.17-r0",
      "targetVersion" : "v1.19.16-r80"
    },
    "status" : {
      "phase" : "Cancel",
      "pointStatuses" : [ { "taskType" : "PreCheck" }, { "taskType" : "Snapshot" },
                          { "taskType" : "Cluster" }, { "taskType" : "PostCheck" } ],
      "lineStatuses" : [
        { "startPoint" : { "taskType" : "PreCheck" }, "endPoint" : { "taskType" : "Cluster" } },
        { "startPoint" : { "taskType" : "Cluster" }, "endPoint" : { "taskType" : "PostCheck" } }
      ]
    }
  }
}"""


def test_the_doc_example_parses() -> None:
    parsed = parse_workflow_list(DOC_EXAMPLE)
    assert len(parsed.items) == 1
    wf = parsed.items[0]
    assert wf.metadata.uid == "730f5577-38ef-448c-b4a7-c6878fbefdda"
    assert wf.metadata.creation_timestamp == datetime(2023, 11, 24, 8, 39, 15, 894417, tzinfo=UTC)
    assert wf.spec.cluster_version == "v1.17.17-r0"
    assert wf.spec.target_version == "v1.19.16-r80"
    assert wf.status.phase == Phase.CANCEL
    assert [p.task_type for p in wf.status.point_statuses] == [
        "PreCheck",
        "Snapshot",
        "Cluster",
        "PostCheck",
    ]
    assert wf.status.point_statuses[0].status is None
    first_line = wf.status.line_statuses[0]
    assert first_line.start_point is not None
    assert first_line.start_point.task_type == "PreCheck"
    assert first_line.end_point is not None
    assert first_line.end_point.task_type == "Cluster"
    assert first_line.critical is None


@pytest.mark.skipif(not SEED_PAGE.exists(), reason="the shared seed page is not on this machine")
def test_the_example_in_the_original_page_parses() -> None:
    page = SEED_PAGE.read_text()
    start = page.index('{\n  "apiVersion"')
    end = page.index("\n\nSDK Sample Code")
    assert parse_workflow_list(page[start:end]).items[0].status.phase == "Cancel"


def test_items_as_a_list_of_several() -> None:
    body = workflow_list(workflow("a"), workflow("b", phase="Running"))
    parsed = parse_workflow_list(json.dumps(body).encode())
    assert [w.metadata.uid for w in parsed.items] == ["a", "b"]
    assert parsed.items[1].status.phase in ACTIVE_PHASES


@pytest.mark.parametrize("items", [None, [], {}, [None]])
def test_no_items(items: Any) -> None:
    assert parse_workflow_list({"kind": "List", "items": items}).items == []
    assert parse_workflow_list({"kind": "List"}).items == []


def test_unknown_enum_values_survive() -> None:
    body = workflow_list(
        workflow(
            "a",
            phase="Paused",
            points=[{"taskType": "NodePoolUpgrade", "status": "Skipped"}],
        )
    )
    wf = parse_workflow_list(body).items[0]
    assert wf.status.phase == "Paused"
    assert wf.status.phase not in set(Phase)
    assert wf.status.point_statuses[0].task_type == "NodePoolUpgrade"
    assert wf.status.point_statuses[0].status == "Skipped"
    assert TaskStatus("Failed") is TaskStatus.FAILED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), (False, False), ("true", True), ("false", False), ("True", True), ("", None)],
)
def test_critical_as_bool_or_string(raw: Any, expected: bool | None) -> None:
    line = {"startPoint": {"taskType": "PreCheck"}, "endPoint": {"taskType": "Cluster"}}
    body = workflow_list(workflow("a", lines=[{**line, "critical": raw}]))
    assert parse_workflow_list(body).items[0].status.line_statuses[0].critical is expected


def test_every_field_optional_and_empty_strings_absent() -> None:
    body = {
        "items": [
            {},
            {"metadata": None, "spec": "", "status": {"pointStatuses": [{}, None]}},
            {
                "metadata": {"uid": "", "creationTimestamp": ""},
                "status": {
                    "phase": "",
                    "pointStatuses": [
                        {"taskType": "PreCheck", "taskID": "", "startTimeStamp": "", "status": ""}
                    ],
                },
            },
        ]
    }
    items = parse_workflow_list(body).items
    assert len(items) == 2  # the empty object describes nothing
    assert items[0].metadata.uid is None
    assert items[0].spec.cluster_version is None
    assert items[0].status.point_statuses == []
    last = items[1]
    assert last.metadata.uid is None
    assert last.metadata.creation_timestamp is None
    assert last.status.phase is None
    point = last.status.point_statuses[0]
    assert (point.task_id, point.start_time_stamp, point.status) == (None, None, None)


def test_single_point_object_instead_of_a_list() -> None:
    body = workflow_list(workflow("a"))
    body["items"][0]["status"]["pointStatuses"] = {"taskType": "Cluster", "status": "Running"}
    points = parse_workflow_list(body).items[0].status.point_statuses
    assert [(p.task_type, p.status) for p in points] == [("Cluster", "Running")]


def test_all_task_timestamps_parse() -> None:
    point = {
        "taskType": "PreCheck",
        "taskID": "t-1",
        "status": "Success",
        "startTimeStamp": "2024-01-01 00:00:00.5 +0000 UTC",
        "endTimeStamp": "2024-01-01T00:01:00Z",
        "expireTimeStamp": "2024-01-01 08:10:00 +0800 CST m=+1.5",
    }
    parsed = parse_workflow_list(workflow_list(workflow("a", points=[point])))
    p = parsed.items[0].status.point_statuses[0]
    assert p.start_time_stamp == datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert p.end_time_stamp == datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    assert p.expire_time_stamp == datetime(2024, 1, 1, 0, 10, tzinfo=UTC)


def test_junk_labels_are_dropped_not_fatal() -> None:
    body = workflow_list(workflow("a"))
    body["items"][0]["metadata"]["labels"] = {"a": "b", "n": 1, "x": {"deep": 1}, "t": True}
    body["items"][0]["metadata"]["annotations"] = ["not", "a", "map"]
    meta = parse_workflow_list(body).items[0].metadata
    assert meta.labels == {"a": "b", "n": "1"}
    assert meta.annotations is None


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"", "not JSON"),
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "JSON array"),
        (b'"items"', "JSON string"),
        (b"null", "JSON null"),
        (b'{"items": 5}', "items"),
        (b'{"items": [1]}', "items.0"),
        (b'{"items": [{"metadata": "x"}]}', "items.0.metadata"),
        (b'{"items": [{"status": {"phase": {"a": 1}}}]}', "items.0.status.phase"),
        (
            b'{"items": [{"metadata": {"creationTimestamp": "yesterday"}}]}',
            "items.0.metadata.creationTimestamp: unrecognised timestamp 'yesterday'",
        ),
        (b"{}", "no 'items'"),
        (b'{"items": [{"metadata": {"uid": {"a": 1}}}]}', "items.0.metadata.uid"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_wrong_shapes_raise_the_documented_error(body: bytes, complaint: str) -> None:
    with pytest.raises(WorkflowParseError, match=r"^the response") as caught:
        parse_workflow_list(body)
    assert complaint in str(caught.value)
    assert caught.value.reason == "InvalidResponse"
    assert "\n" not in str(caught.value)


# -- the parser fails only one way, whatever it is fed ---------------------------

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_any_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


def _field(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # The right kind of value most of the time, anything at all sometimes.
    return st.one_of(value, value, _any_json)


_timestamps = st.sampled_from(
    [
        "2023-11-24 08:39:15.894417 +0000 UTC",
        "0001-01-01 00:00:00 +0000 UTC",  # Go's zero time: an unset time.Time
        "1700815155",  # epoch seconds: an unknown layout
        "2023-11-24 08:39:15 +0800 CST m=+0.000123001",
        "2018-09-05T01:10:59Z",
        "",
        "2023-02-30T00:00:00Z",
        "9999-12-31 23:59:59 -2359 X",
    ]
) | st.text(max_size=40)
_point = st.fixed_dictionaries(
    {},
    optional={
        "taskType": _field(st.sampled_from(["PreCheck", "Cluster", "Snapshot", "PostCheck", ""])),
        "taskID": _field(st.text(max_size=10)),
        "status": _field(st.sampled_from(["Init", "Queuing", "Running", "Success", "Failed", "?"])),
        "startTimeStamp": _field(_timestamps),
        "endTimeStamp": _field(_timestamps),
        "expireTimeStamp": _field(_timestamps),
    },
)
_line = st.fixed_dictionaries(
    {},
    optional={
        "startPoint": _field(st.fixed_dictionaries({"taskType": _field(st.text(max_size=8))})),
        "endPoint": _field(st.fixed_dictionaries({"taskType": _field(st.text(max_size=8))})),
        "critical": _field(st.sampled_from([True, False, "true", "false", "TRUE", "", "yes"])),
    },
)
_workflow = st.fixed_dictionaries(
    {},
    optional={
        "kind": _field(st.just("WorkFlowTask")),
        "metadata": _field(
            st.fixed_dictionaries(
                {},
                optional={
                    "uid": _field(st.uuids().map(str)),
                    "creationTimestamp": _field(_timestamps),
                    "updateTimestamp": _field(_timestamps),
                    "labels": _any_json,
                },
            )
        ),
        "spec": _field(
            st.fixed_dictionaries({}, optional={"clusterVersion": _field(st.text(max_size=12))})
        ),
        "status": _field(
            st.fixed_dictionaries(
                {},
                optional={
                    "phase": _field(
                        st.sampled_from(["Init", "Running", "Pending", "Success", "Cancel", "New"])
                    ),
                    "pointStatuses": _field(st.lists(_point, max_size=4) | _point),
                    "lineStatuses": _field(st.lists(_line, max_size=4) | _line),
                },
            )
        ),
    },
)
_workflow_lists = st.fixed_dictionaries(
    {"kind": st.just("List")},
    optional={"items": _field(st.lists(_workflow, max_size=3) | _workflow)},
)


def _parses_or_fails_cleanly(body: Any) -> None:
    try:
        result = parse_workflow_list(body)
    except WorkflowParseError as exc:
        error: CceError = exc  # the package's own error, nothing else
        assert str(error)
        return
    assert isinstance(result, UpgradeWorkflowList)
    for wf in result.items:
        for moment in (wf.metadata.creation_timestamp, wf.metadata.update_timestamp):
            assert moment is None or (moment.tzinfo is not None and moment.year >= 1970)
        # Whatever is kept can be stored: bounded, and every time formats as RFC 3339.
        view = workflow_to_status_dict(wf)
        assert len(view["pointStatuses"]) <= MAX_LIST_ITEMS
        assert len(view["lineStatuses"]) <= MAX_LIST_ITEMS
        for point in view["pointStatuses"]:
            for key, value in point.items():
                assert isinstance(value, str), key
                assert len(value) <= MAX_STRING, key
                if key.endswith("TimeStamp"):
                    assert _RFC3339.fullmatch(value), value


_fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_fuzz
@given(_workflow_lists)
def test_workflow_shaped_input_parses_or_raises_the_parse_error(body: dict[str, Any]) -> None:
    _parses_or_fails_cleanly(body)
    _parses_or_fails_cleanly(json.dumps(body).encode())


@_fuzz
@given(_any_json)
def test_arbitrary_json_parses_or_raises_the_parse_error(body: Any) -> None:
    _parses_or_fails_cleanly(json.dumps(body))
    _parses_or_fails_cleanly({"items": body})


@_fuzz
@given(st.binary(max_size=200))
def test_junk_bytes_parse_or_raise_the_parse_error(body: bytes) -> None:
    _parses_or_fails_cleanly(body)
    _parses_or_fails_cleanly(b'{"items": [' + body + b"]}")


# -- informational fields are dropped, not fatal (issue 10.3) ---------------------


def test_unreadable_informational_fields_are_dropped_and_reported() -> None:
    current = workflow(
        "current",
        phase="Running",
        points=[
            {
                "taskType": "PreCheck",
                "taskID": {"not": "a string"},
                "status": "Success",
                "startTimeStamp": "1700815155",  # epoch seconds: not a layout the API uses
                "endTimeStamp": "2023-11-24 08:40:15 +0000 UTC",
                "expireTimeStamp": [],
            },
            {"taskType": "Cluster", "status": "Running", "startTimeStamp": "1700815160"},
        ],
        lines=[{"startPoint": "PreCheck", "endPoint": {"taskType": "Cluster"}, "critical": 1}],
    )
    old = workflow("old", created="2022-01-01 00:00:00 +0000 UTC")
    old["spec"] = "v1.27"  # a wrong-typed field in an old history workflow
    old["status"]["pointStatuses"] = "PreCheck"

    parsed = parse_workflow_list(workflow_list(current, old))

    running, history = parsed.items
    assert (running.metadata.uid, running.status.phase) == ("current", "Running")
    first, second = running.status.point_statuses
    assert (first.task_type, first.status, first.task_id, first.start_time_stamp) == (
        "PreCheck",
        "Success",
        None,
        None,
    )
    assert first.end_time_stamp == datetime(2023, 11, 24, 8, 40, 15, tzinfo=UTC)
    assert (second.task_type, second.status, second.start_time_stamp) == (
        "Cluster",
        "Running",
        None,
    )
    (line,) = running.status.line_statuses
    assert (line.start_point, line.critical) == (None, None)
    assert line.end_point is not None
    assert line.end_point.task_type == "Cluster"
    assert history.metadata.uid == "old"
    assert history.spec.cluster_version is None
    assert history.status.point_statuses == []
    assert {(d.field, d.count) for d in parsed.dropped} == {
        ("taskID", 1),
        ("startTimeStamp", 2),
        ("expireTimeStamp", 1),
        ("startPoint", 1),
        ("critical", 1),
        ("spec", 1),
        ("pointStatuses", 1),
    }
    why = {d.field: d.why for d in parsed.dropped}
    assert "1700815155" in why["startTimeStamp"]


def test_a_clean_answer_drops_nothing() -> None:
    assert parse_workflow_list(DOC_EXAMPLE).dropped == ()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"items": "yes"}, "items"),
        ({"items": [{"metadata": {"uid": ["x"]}}]}, "metadata.uid"),
        ({"items": [{"status": {"phase": {"a": 1}}}]}, "status.phase"),
        ({"items": [{"status": "Running"}]}, "status"),
        ({"items": [{"metadata": {"uid": "a", "creationTimestamp": "1700815155"}}]}, "creation"),
    ],
)
def test_what_the_status_cannot_do_without_still_fails(body: dict[str, Any], where: str) -> None:
    with pytest.raises(WorkflowParseError, match=where):
        parse_workflow_list(body)


@pytest.mark.parametrize("body", [b"{}", {}, {"apiVersion": "v3"}])
def test_an_object_without_items_is_not_an_empty_list(body: Any) -> None:
    with pytest.raises(WorkflowParseError, match="no 'items'"):
        parse_workflow_list(body)


def test_an_explicit_empty_list_is_valid() -> None:
    assert parse_workflow_list(b'{"kind": "List", "apiVersion": "v3", "items": []}').items == []
    assert parse_workflow_list({"items": []}).items == []


# -- bounded before stored (issue 11.4) --------------------------------------------


def test_long_task_and_edge_lists_are_cut_and_counted() -> None:
    points = [{"taskType": f"T{i}", "status": "Success"} for i in range(MAX_LIST_ITEMS + 36)]
    lines = [{"critical": True}] * (MAX_LIST_ITEMS + 1)
    parsed = parse_workflow_list(workflow_list(workflow("a", points=points, lines=lines)))
    status = parsed.items[0].status
    assert len(status.point_statuses) == MAX_LIST_ITEMS
    assert status.point_statuses[-1].task_type == f"T{MAX_LIST_ITEMS - 1}"
    assert (status.point_statuses_omitted, status.line_statuses_omitted) == (36, 1)
    view = workflow_to_status_dict(parsed.items[0])
    assert (view["pointStatusesOmitted"], view["lineStatusesOmitted"]) == (36, 1)


def test_lists_within_the_bound_are_not_marked() -> None:
    view = workflow_to_status_dict(parse_workflow_list(DOC_EXAMPLE).items[0])
    assert "pointStatusesOmitted" not in view
    assert "lineStatusesOmitted" not in view


def test_long_strings_are_cut_to_the_bound() -> None:
    body = workflow("u" * 10_000, phase="P" * 300)
    body["spec"]["targetVersion"] = "v" * 5000
    body["status"]["pointStatuses"] = [{"taskType": "x" * 257, "taskID": 7 * 10**300}]
    wf = parse_workflow_list(workflow_list(body)).items[0]
    texts = [
        wf.metadata.uid,
        wf.status.phase,
        wf.spec.target_version,
        wf.status.point_statuses[0].task_type,
        wf.status.point_statuses[0].task_id,
    ]
    assert all(text is not None and len(text) == MAX_STRING for text in texts)
    assert all(text is not None and text.endswith("...") for text in texts)
    assert parse_workflow_list(workflow_list(workflow("u" * MAX_STRING))).items[0].metadata.uid == (
        "u" * MAX_STRING
    )
