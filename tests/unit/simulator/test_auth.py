"""Server-side authentication: signatures made by the official SDK's signer pass,
anything altered fails, and project checks follow."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from cce_upgrade_watch.simulator.auth import AuthFailure, CredentialStore

PROJECT = "0123456789abcdef0123456789abcdef"
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
AK, SK = "HPUAUNITTESTAK000001", "unit-test-secret-key"
# Only for the tests that sign with an explicit date relative to it.
NOW = time.time()


def store() -> CredentialStore:
    credentials = CredentialStore()
    credentials.add_access_key(PROJECT, AK, SK)
    credentials.add_access_key(PROJECT, "TEMPAK", "TEMPSK", security_token="sts")
    credentials.add_token(PROJECT, "good-token")
    return credentials


def sdk_signed(
    *,
    method: str = "GET",
    path: str = f"/autopilot/v3/projects/{PROJECT}/clusters/c/operation/upgradeworkflows",
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    secret_key: str = SK,
    access_key: str = AK,
    date: datetime | None = None,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> tuple[SdkRequest, CIMultiDict[str]]:
    headers = {"Content-Type": content_type, "X-Project-Id": PROJECT, **(extra or {})}
    if date is not None:
        headers["X-Sdk-Date"] = date.strftime("%Y%m%dT%H%M%SZ")
    request = SdkRequest(
        method=method,
        schema="http",
        host="127.0.0.1:8080",
        resource_path=path,
        query_params=list(query or []),
        header_params=headers,
        body=body or None,
    )
    Signer(BasicCredentials(access_key, secret_key, PROJECT)).sign(request)
    return request, CIMultiDict(request.header_params)


def check(
    request: SdkRequest,
    headers: CIMultiDict[str],
    *,
    project_id: str = PROJECT,
    body: bytes | None = None,
    now: float | None = None,
    credentials: CredentialStore | None = None,
) -> AuthFailure | None:
    # The SDK signs with the clock of the moment: judge it by the same clock, not
    # by the module's import time (a long suite ran the tests 20 minutes later).
    path, _, query = request.uri.partition("?")
    return (credentials or store()).authenticate(
        method=request.method,
        raw_path=path,
        raw_query=query,
        headers=headers,
        body=request.body or b"" if body is None else body,
        project_id=project_id,
        wall_now=time.time() if now is None else now,
    )


def test_an_sdk_signed_request_passes() -> None:
    assert check(*sdk_signed()) is None


segment = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    segments=st.lists(segment, min_size=1, max_size=4),
    trailing_slash=st.booleans(),
    query=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)), max_size=4),
    body=st.binary(max_size=64),
    content_type=st.sampled_from(
        ["application/json", "application/json;charset=utf-8", "text/plain"]
    ),
)
def test_any_sdk_signed_request_passes(
    method: str,
    segments: list[str],
    trailing_slash: bool,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str,
) -> None:
    # The path as it goes on the wire: each segment percent-encoded.
    path = "/" + "/".join(quote(s, safe="") for s in segments) + ("/" if trailing_slash else "")
    request, headers = sdk_signed(
        method=method, path=path, query=query, body=body, content_type=content_type
    )
    assert check(request, headers) is None


def test_a_wrong_secret_key_is_401() -> None:
    failure = check(*sdk_signed(secret_key="wrong"))
    assert failure is not None
    assert (failure.status, failure.code) == (401, "CCE.01401001")
    assert "signature" in failure.message


def test_a_changed_body_is_401() -> None:
    request, headers = sdk_signed(method="POST", body=b'{"a": 1}')
    assert check(request, headers) is None
    failure = check(request, headers, body=b'{"a": 2}')
    assert failure is not None
    assert failure.status == 401


def test_a_changed_signed_header_is_401() -> None:
    request, headers = sdk_signed()
    headers["Host"] = "evil.example:8080"
    failure = check(request, headers)
    assert failure is not None
    assert failure.status == 401


@pytest.mark.parametrize("minutes", [-16, 16])
def test_a_date_more_than_15_minutes_away_is_401(minutes: int) -> None:
    signed_at = datetime.fromtimestamp(NOW, UTC)
    request, headers = sdk_signed(date=signed_at)
    assert check(request, headers, now=NOW + 14 * 60) is None
    failure = check(request, headers, now=NOW - minutes * 60)
    assert failure is not None
    # What the API gateway answers (see simulator/auth.py for the source).
    assert (failure.status, failure.code) == (401, "APIGW.0301")
    assert failure.message == (
        "Incorrect IAM authentication information: calc aksk signature fail:signature expired, "
        f"signature time:{signed_at.strftime('%Y%m%dT%H%M%SZ')},server time:"
        f"{datetime.fromtimestamp(NOW - minutes * 60, UTC).strftime('%Y%m%dT%H%M%SZ')}"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.pop("Authorization"), "no X-Auth-Token"),
        (lambda h: h.__setitem__("Authorization", "Basic abc"), "not SDK-HMAC-SHA256"),
        (lambda h: h.pop("X-Sdk-Date"), "X-Sdk-Date header is missing"),
        (lambda h: h.__setitem__("X-Sdk-Date", "yesterday"), "not in the format"),
        (lambda h: h.pop("X-Project-Id"), "signed header x-project-id is missing"),
    ],
)
def test_malformed_requests_are_401(change: object, message: str) -> None:
    request, headers = sdk_signed()
    change(headers)  # type: ignore[operator]
    failure = check(request, headers)
    assert failure is not None
    assert failure.status == 401
    assert message in failure.message


def test_an_unknown_access_key_is_401() -> None:
    failure = check(*sdk_signed(access_key="NOBODY"))
    assert failure is not None
    assert "unknown access key" in failure.message


def test_temporary_credentials_need_their_security_token() -> None:
    with_token = sdk_signed(
        access_key="TEMPAK", secret_key="TEMPSK", extra={"X-Security-Token": "sts"}
    )
    assert check(*with_token) is None
    without = sdk_signed(access_key="TEMPAK", secret_key="TEMPSK")
    failure = check(*without)
    assert failure is not None
    assert "X-Security-Token" in failure.message


def test_another_project_is_403() -> None:
    failure = check(*sdk_signed(), project_id=OTHER_PROJECT)
    assert failure is not None
    assert (failure.status, failure.code) == (403, "CCE.01403001")


def test_an_access_key_may_serve_several_projects() -> None:
    credentials = store()
    credentials.add_access_key(OTHER_PROJECT, AK, SK)
    request, headers = sdk_signed(extra={"X-Project-Id": OTHER_PROJECT})
    assert check(request, headers, project_id=OTHER_PROJECT, credentials=credentials) is None
    with pytest.raises(ValueError, match="another secret"):
        credentials.add_access_key(OTHER_PROJECT, AK, "different")


def test_x_project_id_must_match_the_path() -> None:
    credentials = store()
    credentials.add_access_key(OTHER_PROJECT, AK, SK)
    failure = check(*sdk_signed(), project_id=OTHER_PROJECT, credentials=credentials)
    assert failure is not None
    assert failure.status == 403
    assert "X-Project-Id" in failure.message


def test_tokens() -> None:
    def token_check(token: str, project: str = PROJECT) -> AuthFailure | None:
        return store().authenticate(
            method="GET",
            raw_path="/x",
            raw_query="",
            headers=CIMultiDict({"x-auth-token": token}),
            body=b"",
            project_id=project,
            wall_now=NOW,
        )

    assert token_check("good-token") is None
    bad = token_check("bad-token")
    assert bad is not None
    assert bad.status == 401
    other = token_check("good-token", OTHER_PROJECT)
    assert other is not None
    assert other.status == 403


def test_describe_never_shows_a_secret() -> None:
    text = repr(store().describe())
    assert SK not in text
    assert "TEMPSK" not in text
    assert "sts" not in text
    assert "good-token" not in text
