"""Fuzzing what comes from outside: timestamps and durations as any text, and whole
HTTP answers (status, headers, body) through the CCE client.

tests/unit/cce/test_models.py fuzzes the workflow parser and test_timestamps.py /
tests/unit/reconcile/test_durations.py round-trip well-formed values; here the
inputs are arbitrary, and the contract is the error type: a parser raises only its
documented error, and the client raises only `CceApiError` (never an httpx, JSON or
pydantic exception), whose text never carries a credential even when the server
echoes one back.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.cce.auth import AkSkAuth, TokenAuth
from cce_upgrade_watch.cce.client import CceClient, RetryPolicy
from cce_upgrade_watch.cce.errors import CceApiError, TimestampParseError
from cce_upgrade_watch.cce.models import UpgradeWorkflow
from cce_upgrade_watch.cce.timestamps import format_rfc3339, parse_timestamp
from cce_upgrade_watch.durations import (
    MAX_DURATION_NS,
    format_duration,
    parse_duration,
    parse_duration_ns,
)
from cce_upgrade_watch.reconcile import PollFailure, WorkflowsFetched, reconcile
from cce_upgrade_watch.spec import parse_watch_spec

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like the real thing often enough to reach deep into the parsers.
_timestamp_like = st.from_regex(
    r"\A\d{1,5}-\d{1,3}-\d{1,3}[T ]\d{1,3}:\d{1,3}:\d{1,3}(\.\d{0,12})?"
    r"( ?([Zz]|[+-]\d{1,4}(:\d{1,3})?)( [A-Za-z0-9+-]{0,12})?( m=[+-]\d+(\.\d+)?)?)?\Z"
)


@FUZZ
@given(st.text(max_size=60) | _timestamp_like)
@example("2023-11-24 08:39:15.894417 +0000 UTC m=+0.000123001")
@example("9999-12-31T23:59:59-23:59")
@example("0001-01-01T00:00:00+23:59")
@example("2024-02-30 00:00:00 +0000 UTC")
@example("0001-01-01 00:00:00 +0000 UTC")  # Go's zero time: an unset time.Time
@example("0001-01-01 00:00:00 +0000 UTC m=+0.000000001")
@example("1969-12-31 23:59:59.999999999 -0000 UTC")
def test_any_text_is_a_utc_time_or_the_timestamp_error(text: str) -> None:
    try:
        moment = parse_timestamp(text)
    except TimestampParseError:
        return  # the documented error, nothing else
    if moment is not None:
        assert moment.utcoffset() == timedelta(0)
        assert parse_timestamp(format_rfc3339(moment)) == moment  # what status shows


@FUZZ
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
    st.sampled_from(["T", "t", " "]),
    st.booleans(),
)
def test_rfc3339_with_any_offset_means_the_same_instant(
    moment: datetime, offset_minutes: int, separator: str, colon: bool
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.replace(tzinfo=UTC).astimezone(zone)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    offset = f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"
    text = local.strftime(f"%Y-%m-%d{separator}%H:%M:%S.%f") + offset
    assert parse_timestamp(text) == moment.replace(tzinfo=UTC)


_duration_like = st.from_regex(r"\A[+-]?(\d{0,20}(\.\d{0,12})?(ns|us|µs|μs|ms|s|m|h|d|x)?){0,4}\Z")


@FUZZ
@given(st.text(max_size=40) | _duration_like)
@example("9223372036854775807ns")
@example("9223372036854775808ns")
@example("2562047h47m16.854775807s")
@example("-.5h")
@example("1.h")
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    try:
        nanoseconds = parse_duration_ns(text)
    except ValueError:
        return  # the documented error, nothing else
    assert -MAX_DURATION_NS <= nanoseconds <= MAX_DURATION_NS
    assert parse_duration_ns(format_duration(nanoseconds)) == nanoseconds
    assert abs(parse_duration(text) - timedelta(microseconds=nanoseconds / 1000)) <= timedelta(
        microseconds=1
    )


@FUZZ
@given(st.text(max_size=12) | _duration_like, st.text(max_size=12) | _duration_like)
def test_any_interval_text_is_accepted_within_bounds_or_refused_by_name(
    poll: str, active: str
) -> None:
    """The spec parser, the operator's own defence behind the CRD, on any interval."""
    spec = {
        "region": "ap-southeast-1",
        "projectId": "0123456789abcdef0123456789abcdef",
        "clusterId": "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
        "credentialsSecretRef": {"name": "creds"},
        "pollInterval": poll,
        "activePollInterval": active,
    }
    try:
        parsed = parse_watch_spec(spec)
    except ValueError as exc:
        complaint = str(exc)
        parsed = None
    if parsed is None:
        assert "spec.pollInterval" in complaint or "spec.activePollInterval" in complaint
        return
    assert timedelta(seconds=10) <= parsed.poll_interval <= timedelta(hours=24)
    assert parsed.active_poll_interval >= timedelta(seconds=5)


# ---------------------------------------------------------------- the client

SECRET_KEY = "fuzz-secret-key-2f8c41d9"
SECURITY_TOKEN = "fuzz-security-token-7be0a3"
TOKEN = "fuzz-iam-token-c5d61e0f"
ACCESS_KEY = "FUZZAKQ7Z3X9W2"  # no secret, but never shown whole either
SECRETS = (SECRET_KEY, SECURITY_TOKEN, TOKEN, ACCESS_KEY)

_echo = st.sampled_from([*SECRETS, "", "x", "ok"])
_error_body: st.SearchStrategy[dict[str, object]] = st.fixed_dictionaries(
    {},
    optional={
        "error_code": st.one_of(st.text(max_size=12), st.integers(), _echo),
        "error_msg": st.one_of(st.text(max_size=30), _echo, st.none()),
        "errorCode": _echo,
        "errorMessage": st.one_of(_echo, st.builds(lambda s: f"bad signature {s}", _echo)),
        "message": st.one_of(_echo, st.text(max_size=20)),
        "error": st.fixed_dictionaries({}, optional={"code": _echo, "message": _echo}),
        "items": st.one_of(st.none(), st.just([]), st.just({}), st.just("x")),
    },
)
_body = st.one_of(
    _error_body.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=80),
    st.just(b'{"kind": "List", "items": [{"metadata": {"uid": "a"}}]}'),
    st.just(b'{"items": {"status": {"phase": "Running"}}}'),
    st.just(b'{"items": [{"metadata": {"creationTimestamp": "yesterday"}}]}'),
    st.just(b'{"items": [{"metadata": {"creationTimestamp": "0001-01-01 00:00:00 +0000 UTC"}}]}'),
    st.just(b"{}"),
    st.just(b'{"error_code": "APIGW.0101", "error_msg": "The API does not exist"}'),
    st.just(b'{"error_code": "APIGW.0301", "error_msg": "signature expired, signature time:x"}'),
)
_answer = st.tuples(
    st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504]),
    st.one_of(
        st.none(),
        st.text(max_size=20),
        st.sampled_from(["0", "1", "-5", "1e9", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    ),
    _body,
    st.booleans(),  # a transport failure instead of an answer
)


def _auth(use_token: bool) -> tuple[httpx.Auth, tuple[str, ...]]:
    """An auth and the secrets it holds (what the server may echo, what must not show)."""
    if use_token:
        return TokenAuth(TOKEN), (TOKEN,)
    project = "0123456789abcdef0123456789abcdef"
    return AkSkAuth(ACCESS_KEY, SECRET_KEY, project, SECURITY_TOKEN), (
        SECRET_KEY,
        SECURITY_TOKEN,
        ACCESS_KEY,
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_answer, min_size=1, max_size=4), st.booleans())
def test_any_answer_is_workflows_or_a_clean_api_error(
    answers: list[tuple[int, str | None, bytes, bool]], use_token: bool
) -> None:
    remaining = list(answers)
    auth, secrets = _auth(use_token)

    def handler(request: httpx.Request) -> httpx.Response:
        status, retry_after, body, broken = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        if broken:
            # A transport error whose text quotes a credential, as some proxies do.
            raise httpx.RemoteProtocolError(f"peer reset; sent {secrets[status % len(secrets)]}")
        headers = {"Content-Type": "application/json"}
        if retry_after is not None and retry_after.isprintable() and retry_after.isascii():
            headers["Retry-After"] = retry_after
        return httpx.Response(status, content=body, headers=headers)

    async def sleep(_: float) -> None:
        pass

    async def call() -> list[UpgradeWorkflow]:
        async with CceClient(
            transport=httpx.MockTransport(handler), retry=RetryPolicy(attempts=3), sleep=sleep
        ) as client:
            return await client.list_upgrade_workflows(
                "0123456789abcdef0123456789abcdef",
                "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
                auth=auth,
                endpoint="https://cce.example.com",
            )

    spec = parse_watch_spec(
        {
            "region": "ap-southeast-1",
            "projectId": "0123456789abcdef0123456789abcdef",
            "clusterId": "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
            "credentialsSecretRef": {"name": "creds"},
        }
    )
    now = datetime(2024, 1, 1, tzinfo=UTC)
    try:
        workflows = asyncio.run(call())
    except CceApiError as exc:
        error: CceApiError | None = exc
        workflows = []
    else:
        error = None
    if error is None:
        assert all(isinstance(workflow, UpgradeWorkflow) for workflow in workflows)
        json.dumps(reconcile(None, spec, 1, WorkflowsFetched(workflows), now).status)
        return
    text = str(error) + repr(error.args)
    for secret in secrets:
        assert secret not in text, (secret, text)
    if error.retry_after is not None:
        assert error.retry_after >= 0  # never NaN, never negative
    # What the operator stores and announces: a usable condition, no credential.
    status = reconcile(None, spec, 1, PollFailure.from_error(error), now).status
    assert all(condition["reason"] for condition in status["conditions"])
    assert not any(secret in json.dumps(status) for secret in secrets)


def test_an_echoed_access_key_is_cut_short() -> None:
    """The simulator, like IAM, names an unknown access key in its 401."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error_code": "CCE.01401001", "error_msg": f"unknown access key {ACCESS_KEY}"}
        return httpx.Response(401, json=body)

    async def call() -> None:
        async with CceClient(transport=httpx.MockTransport(handler)) as client:
            await client.list_upgrade_workflows(
                "0123456789abcdef0123456789abcdef",
                "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
                auth=_auth(use_token=False)[0],
                endpoint="https://cce.example.com",
            )

    with pytest.raises(CceApiError) as caught:
        asyncio.run(call())
    assert ACCESS_KEY not in str(caught.value)
    assert f"unknown access key {ACCESS_KEY[:4]}****" in str(caught.value)
