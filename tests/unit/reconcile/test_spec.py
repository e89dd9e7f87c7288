"""The spec model: defaults, and errors that name the field (as the CRD's do)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cce_upgrade_watch.spec import SecretReference, SpecError, WatchSpec, parse_watch_spec

from ._support import BASE_SPEC


def _problems(**overrides: Any) -> list[str]:
    raw = {**BASE_SPEC, **overrides}
    raw = {key: value for key, value in raw.items() if value is not None}
    with pytest.raises(SpecError) as caught:
        parse_watch_spec(raw)
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


def test_defaults() -> None:
    spec = parse_watch_spec(BASE_SPEC)
    assert spec == WatchSpec(
        region="ap-southeast-1",
        project_id="0123456789abcdef0123456789abcdef",
        cluster_id="b4b9e60f-8aa2-11ee-af09-0255ac10004f",
        credentials_secret_ref=SecretReference(name="cce-credentials"),
    )
    assert spec.poll_interval == timedelta(minutes=5)
    assert spec.active_poll_interval == timedelta(seconds=30)
    assert spec.suspend is False
    assert spec.history_limit == 5
    assert spec.endpoint is None
    assert spec.credentials_secret_ref == SecretReference(name="cce-credentials")


def test_full_spec_as_kopf_passes_it() -> None:
    spec = parse_watch_spec(
        {
            **BASE_SPEC,
            "region": None,
            "endpoint": "http://127.0.0.1:8080",
            "pollInterval": "1h30m",
            "activePollInterval": "5s",
            "suspend": True,
            "historyLimit": 0,
            "unknownFutureField": "ignored",
        }
    )
    assert spec.region is None
    assert spec.endpoint == "http://127.0.0.1:8080"
    assert spec.poll_interval == timedelta(hours=1, minutes=30)
    assert spec.active_poll_interval == timedelta(seconds=5)
    assert spec.suspend is True
    assert spec.history_limit == 0


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://cce.ap-southeast-1.myhuaweicloud.com",
        "https://cce.example.com:8443/prefix",
        "http://localhost:8080",
        "http://127.0.0.1",
        "http://127.1.2.3:9/x",
        "http://[::1]:8080",
    ],
)
def test_endpoints_accepted(endpoint: str) -> None:
    assert parse_watch_spec({**BASE_SPEC, "endpoint": endpoint}).endpoint == endpoint


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("http://example.com", "plain http:// is allowed only for loopback hosts"),
        ("http://10.0.0.1:8080", "plain http:// is allowed only for loopback hosts"),
        ("http://localhost.evil.com", "plain http:// is allowed only for loopback hosts"),
        ("ftp://example.com", "must be an https:// URL"),
        ("cce.example.com", "must be an https:// URL"),
        ("https://user@example.com", "must be an https:// URL"),
    ],
)
def test_endpoints_refused(endpoint: str, problem: str) -> None:
    [message] = _problems(endpoint=endpoint)
    assert message.startswith("spec.endpoint: ")
    assert problem in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"projectId": "ABC"}, "spec.projectId: must be 32 lowercase hexadecimal characters"),
        ({"projectId": "0123456789ABCDEF0123456789ABCDEF"}, "spec.projectId: must be 32"),
        ({"clusterId": "not-a-uuid"}, "spec.clusterId: must be a lowercase UUID"),
        (
            {"region": "AP_1"},
            "spec.region: must be a Huawei Cloud region id such as ap-southeast-1",
        ),
        ({"pollInterval": "5s"}, "spec.pollInterval: must be at least 10s"),
        ({"pollInterval": "25h"}, "spec.pollInterval: must be at most 24h"),
        ({"pollInterval": "1d"}, "spec.pollInterval: invalid duration '1d': unknown unit 'd'"),
        ({"activePollInterval": "1s"}, "spec.activePollInterval: must be at least 5s"),
        ({"activePollInterval": "-5m"}, "spec.activePollInterval: must be at least 5s"),
        ({"historyLimit": 51}, "spec.historyLimit: must be between 0 and 50, got 51"),
        ({"historyLimit": -1}, "spec.historyLimit: must be between 0 and 50, got -1"),
        ({"credentialsSecretRef": {"name": "Bad_Name"}}, "spec.credentialsSecretRef.name: must be"),
        ({"credentialsSecretRef": {}}, "spec.credentialsSecretRef.name: is required"),
        ({"projectId": None}, "spec.projectId: is required"),
        ({"region": None}, "spec.region or spec.endpoint must be set"),
    ],
)
def test_errors_name_the_field(overrides: dict[str, Any], expected: str) -> None:
    [message] = _problems(**overrides)
    assert message.startswith(expected)


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(region=None, projectId="x", pollInterval="1s", historyLimit=99)
    assert [problem.split(":")[0] for problem in problems] == [
        "spec.projectId",
        "spec.pollInterval",
        "spec.historyLimit",
        "spec.region or spec.endpoint must be set",
    ]


@pytest.mark.parametrize("raw", [None, [], "spec"])
def test_not_an_object(raw: Any) -> None:
    with pytest.raises(SpecError, match=r"^spec: "):
        parse_watch_spec(raw)


def test_spec_is_immutable() -> None:
    spec = parse_watch_spec(BASE_SPEC)
    with pytest.raises(ValueError, match="frozen"):
        spec.suspend = True  # type: ignore[misc]
