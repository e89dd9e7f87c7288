"""Authentication and project checks, done as the cloud does them.

A request is authenticated by a known IAM token (`X-Auth-Token`) or by an
SDK-HMAC-SHA256 signature that the simulator recomputes from the request as
received (method, raw path, query pairs, the headers named in `SignedHeaders`,
the body) with the secret key it holds for the access key. The `X-Sdk-Date`
must be within 15 minutes of the real wall clock. Temporary credentials must
also send their `X-Security-Token`, and those the simulator's STS issued
(`identity_app`) are refused once their expiry has passed. Then the project in the path (and in
`X-Project-Id` when sent) must belong to the credentials.

Failures are 401 `CCE.01401001` (who are you?) or 403 `CCE.01403001` (not yours),
except a stale `X-Sdk-Date`, which the API gateway refuses before CCE sees the
request: 401 `APIGW.0301` "Incorrect IAM authentication information: calc aksk
signature fail:signature expired, signature time:...,server time:..." (the text
Huawei Cloud's gateway sends, quoted in huaweicloud/huaweicloud-sdk-java-v3#44;
the code from the "API Gateway > Error Codes" page).
The recomputation uses the same `sign` as the operator's client, and the test
suite proves both against the official SDK, so a pass here means a pass there.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from cce_upgrade_watch.cce.signing import DATE_FORMAT, DATE_HEADER, parse_authorization, sign

MAX_CLOCK_SKEW_SECONDS = 15 * 60

CODE_UNAUTHENTICATED = "CCE.01401001"
CODE_FORBIDDEN = "CCE.01403001"
CODE_GATEWAY_IAM = "APIGW.0301"


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key: str
    secret_key: str
    security_token: str | None
    project_ids: frozenset[str]
    #: Wall-clock epoch seconds after which the key is refused (temporary keys).
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuthFailure:
    status: int
    code: str
    message: str


@dataclass
class CredentialStore:
    """Accepted credentials, per project. An access key or token may serve several."""

    _keys: dict[str, AccessKey] = field(default_factory=dict)
    _tokens: dict[str, frozenset[str]] = field(default_factory=dict)

    def add_access_key(
        self,
        project_id: str,
        access_key: str,
        secret_key: str,
        security_token: str | None = None,
        *,
        expires_at: float | None = None,
    ) -> None:
        known = self._keys.get(access_key)
        if known is not None and (known.secret_key, known.security_token) != (
            secret_key,
            security_token,
        ):
            raise ValueError(f"access key {access_key} is already defined with another secret")
        projects = (known.project_ids if known else frozenset()) | {project_id}
        self._keys[access_key] = AccessKey(
            access_key, secret_key, security_token, projects, expires_at
        )

    def add_temporary_key(
        self,
        project_ids: frozenset[str],
        access_key: str,
        secret_key: str,
        security_token: str,
        expires_at: float,
        *,
        wall_now: float,
    ) -> None:
        """An STS-issued key; keys that expired a while ago are dropped on the way."""
        self._keys = {
            key: known
            for key, known in self._keys.items()
            if known.expires_at is None or known.expires_at > wall_now - 3600
        }
        self._keys[access_key] = AccessKey(
            access_key, secret_key, security_token, project_ids, expires_at
        )

    def add_token(self, project_id: str, token: str) -> None:
        self._tokens[token] = self._tokens.get(token, frozenset()) | {project_id}

    def project_ids(self) -> set[str]:
        projects: set[str] = set()
        for key in self._keys.values():
            projects |= key.project_ids
        for token_projects in self._tokens.values():
            projects |= token_projects
        return projects

    def clear(self) -> None:
        self._keys.clear()
        self._tokens.clear()

    def describe(self) -> list[dict[str, object]]:
        """The access keys and project ids, never a secret."""
        return [
            {
                "accessKey": key.access_key,
                "projectIds": sorted(key.project_ids),
                "temporary": key.security_token is not None,
            }
            for key in self._keys.values()
        ] + [{"token": "<hidden>", "projectIds": sorted(p)} for p in self._tokens.values()]

    def authenticate(
        self,
        *,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
        project_id: str | None,
        wall_now: float,
    ) -> AuthFailure | None:
        """None when the request may act on `project_id`; else why not.

        `project_id=None` checks the signature only (a global service: STS).

        `headers` must look names up case-insensitively (aiohttp's headers do).
        """
        token = headers.get("X-Auth-Token")
        if token is not None:
            token_projects = self._tokens.get(token)
            if token_projects is None:
                return _unauthenticated("the token is invalid or has expired")
            if project_id is None:
                return None
            return _check_project(token_projects, project_id, headers)

        authorization = headers.get("Authorization")
        if authorization is None:
            return _unauthenticated("no X-Auth-Token and no Authorization header in the request")
        parsed = parse_authorization(authorization)
        if parsed is None:
            return _unauthenticated("the Authorization header is not SDK-HMAC-SHA256")
        access_key, signed_list, signature = parsed
        key = self._keys.get(access_key)
        if key is None:
            return _unauthenticated(f"unknown access key {access_key}")

        sdk_date = headers.get(DATE_HEADER)
        if sdk_date is None:
            return _unauthenticated(f"the {DATE_HEADER} header is missing")
        signed_at = _parse_sdk_date(sdk_date)
        if signed_at is None:
            return _unauthenticated(
                f"{DATE_HEADER} {sdk_date!r} is not in the format {DATE_FORMAT}"
            )
        if abs(wall_now - signed_at) > MAX_CLOCK_SKEW_SECONDS:
            return signature_expired(sdk_date, wall_now)

        names = [name for name in signed_list.split(";") if name]
        if DATE_HEADER.lower() not in names:
            return _unauthenticated(f"{DATE_HEADER} must be a signed header")
        signed_headers: dict[str, str] = {}
        for name in names:
            value = headers.get(name)
            if value is None:
                return _unauthenticated(f"the signed header {name} is missing from the request")
            signed_headers[name] = value
        expected = sign(
            method=method,
            path=raw_path,
            query=parse_qsl(raw_query, keep_blank_values=True),
            headers=signed_headers,
            body=body,
            secret_key=key.secret_key,
        )
        if not hmac.compare_digest(expected.signature, signature):
            return _unauthenticated("the request signature does not match")
        if key.security_token is not None and headers.get("X-Security-Token") != (
            key.security_token
        ):
            return _unauthenticated("temporary credentials need their X-Security-Token")
        if key.expires_at is not None and wall_now >= key.expires_at:
            return _unauthenticated("the temporary credentials have expired")
        if project_id is None:
            return None
        return _check_project(key.project_ids, project_id, headers)


_SDK_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


def _parse_sdk_date(value: str) -> float | None:
    """`20240101T000000Z` (DATE_FORMAT) as epoch seconds; strptime is slow per request."""
    match = _SDK_DATE.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        return None


def signature_expired(sdk_date: str, server_now: float) -> AuthFailure:
    """The API gateway's answer to a signature more than 15 minutes off its clock."""
    server_time = datetime.fromtimestamp(server_now, UTC).strftime(DATE_FORMAT)
    return AuthFailure(
        401,
        CODE_GATEWAY_IAM,
        "Incorrect IAM authentication information: calc aksk signature fail:signature "
        f"expired, signature time:{sdk_date},server time:{server_time}",
    )


def _unauthenticated(message: str) -> AuthFailure:
    return AuthFailure(401, CODE_UNAUTHENTICATED, f"Authentication failed: {message}")


def _check_project(
    allowed: frozenset[str], project_id: str, headers: Mapping[str, str]
) -> AuthFailure | None:
    header_project = headers.get("X-Project-Id")
    if header_project is not None and header_project != project_id:
        return AuthFailure(
            403,
            CODE_FORBIDDEN,
            f"Forbidden: X-Project-Id {header_project} does not match project {project_id}",
        )
    if project_id not in allowed:
        return AuthFailure(
            403,
            CODE_FORBIDDEN,
            f"Forbidden: the credentials have no access to project {project_id}",
        )
    return None
