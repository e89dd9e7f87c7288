"""Credential providers: one per way Huawei Cloud hands out temporary AK/SK.

Each provider knows one exchange and returns `KeyCredentials` with an expiry;
none caches (that is `CredentialCache`'s job, keyed by `provider.identity`, a
description that names no secret). Requests, answers and header names are those
of the official SDK (`huaweicloudsdkcore/auth/internal.py`, `huaweicloudsdksts`).

Huawei's pages for each path:
- AssumeAgencyWithOIDC (sessions of 900 s up to the agency's maximum of 1 to 12
  hours; one hour at most when chained through AssumeAgency):
  https://support.huaweicloud.com/intl/en-us/api-iam5/AssumeAgencyWithOIDC.html
- temporary credentials and STS in general:
  https://support.huaweicloud.com/intl/en-us/usermanual-iam5/iam_01_1236.html
- workload identity through the older IAM (identity provider, id token):
  https://support.huaweicloud.com/usermanual-cce/cce_10_2188.html
- CCE pod identity:
  https://support.huaweicloud.com/intl/en-us/usermanual-cce/cce_10_1110.html
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cce_upgrade_watch.cce.identity.credentials import KeyCredentials
from cce_upgrade_watch.cce.identity.errors import IdentityExchangeFailed
from cce_upgrade_watch.cce.identity.exchange import IdentityHttp

#: A ServiceAccount (OIDC) token, read fresh for every exchange: the kubelet
#: rotates projected token files, and a TokenRequest mints one per call.
TokenSource = Callable[[], Awaitable[str]]

#: STS sessions last 900 s to the agency's maximum (1 to 12 hours); the SDK's default.
DEFAULT_DURATION_SECONDS = 3600
MIN_DURATION_SECONDS = 900
MAX_DURATION_SECONDS = 12 * 3600
#: The session name shows in the cloud's audit trail (CTS) for what the operator did.
DEFAULT_SESSION_NAME = "cce-upgrade-watch"
#: A JWT is a few hundred bytes to a few kilobytes; a "token" beyond this is not one.
MAX_ID_TOKEN_BYTES = 16 * 1024

ASSUME_WITH_OIDC_PATH = "/v5/agencies/assume-with-oidc"
ASSUME_AGENCY_PATH = "/v5/agencies/assume"
ID_TOKEN_PATH = "/v3.0/OS-AUTH/id-token/tokens"  # noqa: S105 (a path)
SECURITY_TOKENS_PATH = "/v3.0/OS-CREDENTIAL/securitytokens"
METADATA_TOKEN_PATH = "/meta-data/latest/api/token"  # noqa: S105 (a path)
METADATA_SECURITY_KEY_PATH = "/openstack/latest/securitykey"

#: The ECS metadata service's documented address. Only a production default for
#: an explicit `--metadata-endpoint`/`ambient` choice: nothing uses it unless asked,
#: and tests always pass the simulator's loopback URL.
DOCUMENTED_METADATA_ENDPOINT = "http://169.254.169.254"
METADATA_TOKEN_HEADER = "X-Metadata-Token"  # noqa: S105 (a header name)
METADATA_TOKEN_TTL_HEADER = "X-Metadata-Token-Ttl-Seconds"  # noqa: S105 (a header name)
METADATA_TOKEN_TTL_SECONDS = 6 * 3600  # the SDK's
#: What the metadata service says when the ECS has no agency (the SDK's test too).
NO_AGENCY_TEXT = "Please configure Cloud Service Agency first"
IDP_ID_HEADER = "X-Idp-Id"
SUBJECT_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 (a header name)
#: IAM's securitytokens default in the SDK's FederalAccessor: 6 hours.
FEDERATED_DURATION_SECONDS = 6 * 3600

_AGENCY_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")


class CredentialProvider(Protocol):
    @property
    def identity(self) -> str:
        """What these credentials are for (cache key, log text); never a secret."""
        ...

    async def fetch(self) -> KeyCredentials: ...


def token_file(path: str | Path) -> TokenSource:
    """A token read from `path` on every exchange (a projected ServiceAccount token)."""

    async def read() -> str:
        try:
            raw = await asyncio.to_thread(_read_bounded, Path(path))
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise IdentityExchangeFailed(
                f"the token file {str(path)!r} cannot be read ({why})"
            ) from None
        token = raw.strip()
        if not token:
            raise IdentityExchangeFailed(f"the token file {str(path)!r} is empty")
        return token

    return read


def _read_bounded(path: Path) -> str:
    with path.open("rb") as handle:
        data = handle.read(MAX_ID_TOKEN_BYTES + 1)
    if len(data) > MAX_ID_TOKEN_BYTES:
        raise OSError(0, "larger than a token can be")
    return data.decode("utf-8", "replace")


def _checked_duration(seconds: int) -> int:
    if not MIN_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(
            f"duration_seconds must be from {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS}"
        )
    return seconds


def _base(url: str) -> str:
    return url.rstrip("/")


def agency_urn(*, account_id: str, agency_name: str) -> str:
    """`iam::{account id}:agency:{name}`, the URN STS's v5 AssumeAgency takes."""
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise ValueError("the account (domain) id must be 32 lowercase hex characters")
    if not _AGENCY_NAME.fullmatch(agency_name):
        raise ValueError("the agency name must be 1 to 64 letters, digits, '_', '-' or '.'")
    return f"iam::{account_id}:agency:{agency_name}"


@dataclass(frozen=True)
class StaticProvider:
    """Long-lived keys (a Secret, CLOUD_SDK_AK/SK) as a source for `AssumeAgencyProvider`."""

    credentials: KeyCredentials = field(repr=False)
    label: str = "static keys"

    @property
    def identity(self) -> str:
        return f"static:{self.label}"

    async def fetch(self) -> KeyCredentials:
        return self.credentials


@dataclass(frozen=True, kw_only=True)
class _StsSession:
    """What both STS calls share: the endpoint, the session's length and name."""

    http: IdentityHttp = field(repr=False, compare=False)
    sts_endpoint: str
    duration_seconds: int = DEFAULT_DURATION_SECONDS
    session_name: str = DEFAULT_SESSION_NAME

    def __post_init__(self) -> None:
        _checked_duration(self.duration_seconds)

    async def _session(
        self, operation: str, path: str, body: dict[str, object], **options: Any
    ) -> KeyCredentials:
        return await self.http.credentials(
            operation,
            "POST",
            _base(self.sts_endpoint) + path,
            json_body={
                **body,
                "agency_session_name": self.session_name,
                "duration_seconds": self.duration_seconds,
            },
            **options,
        )


@dataclass(frozen=True, kw_only=True)
class OidcStsProvider(_StsSession):
    """A ServiceAccount token exchanged at STS (AssumeAgencyWithOIDC; unsigned: the
    token is the proof). `subject` names whose token it is, e.g. `team-a/watcher`."""

    provider_urn: str
    agency_urn: str
    token: TokenSource = field(repr=False, compare=False)
    subject: str

    @property
    def identity(self) -> str:
        return f"oidc:{self.subject}@{self.provider_urn}->{self.agency_urn}"

    async def fetch(self) -> KeyCredentials:
        id_token = await self.token()
        return await self._session(
            "assume agency with OIDC",
            ASSUME_WITH_OIDC_PATH,
            {
                "provider_urn": self.provider_urn,
                "agency_urn": self.agency_urn,
                "id_token": id_token,
            },
            secrets=(id_token,),
        )


@dataclass(frozen=True)
class FederatedIamProvider:
    """The two-step IAM path (the SDK's FederalAccessor): the OIDC token buys an
    unscoped IAM token (`X-Subject-Token`), which buys temporary AK/SK."""

    http: IdentityHttp = field(repr=False, compare=False)
    iam_endpoint: str
    idp_id: str
    token: TokenSource = field(repr=False, compare=False)
    subject: str
    duration_seconds: int = FEDERATED_DURATION_SECONDS

    @property
    def identity(self) -> str:
        return f"federated:{self.subject}@{self.idp_id}"

    async def fetch(self) -> KeyCredentials:
        id_token = await self.token()
        base = _base(self.iam_endpoint)
        answer = await self.http.call(
            "create token with OIDC id token",
            "POST",
            base + ID_TOKEN_PATH,
            headers={IDP_ID_HEADER: self.idp_id},
            json_body={"auth": {"id_token": {"id": id_token}}},
            secrets=(id_token,),
        )
        unscoped = answer.headers.get(SUBJECT_TOKEN_HEADER, "").strip()
        if not unscoped:
            raise IdentityExchangeFailed(
                f"IAM answered without an {SUBJECT_TOKEN_HEADER} header",
                operation="create token with OIDC id token",
                status_code=answer.status_code,
            )
        return await self.http.credentials(
            "create temporary access key",
            "POST",
            base + SECURITY_TOKENS_PATH,
            json_body={
                "auth": {
                    "identity": {
                        "methods": ["token"],
                        "token": {"id": unscoped, "duration_seconds": self.duration_seconds},
                    }
                }
            },
            secrets=(id_token, unscoped),
        )


class MetadataProvider:
    """The node's agency, from the ECS metadata service (the SDK's MetadataAccessor):
    a session token from `PUT /meta-data/latest/api/token` (kept and reused), then
    `GET /openstack/latest/securitykey` with `X-Metadata-Token`. A service without
    session tokens (404/405/503 on the PUT) is asked without one, as the SDK does.

    `endpoint` has no default on purpose: the caller passes the configured one.
    """

    def __init__(self, http: IdentityHttp, endpoint: str) -> None:
        self._http = http
        self._endpoint = _base(endpoint)
        self._session_token: str | None = None
        self._lock = asyncio.Lock()

    @property
    def identity(self) -> str:
        return f"metadata:{self._endpoint}"

    async def fetch(self) -> KeyCredentials:
        async with self._lock:
            if self._session_token is None:
                self._session_token = await self._new_session_token()
            try:
                return await self._security_key()
            except IdentityExchangeFailed as exc:
                # "Please configure Cloud Service Agency first" is no session problem.
                if exc.status_code != 401 or NO_AGENCY_TEXT in (exc.error_msg or ""):
                    raise
            # The session token expired: one new one, one more try.
            self._session_token = await self._new_session_token()
            return await self._security_key()

    async def _new_session_token(self) -> str | None:
        try:
            answer = await self._http.call(
                "get metadata session token",
                "PUT",
                self._endpoint + METADATA_TOKEN_PATH,
                headers={METADATA_TOKEN_TTL_HEADER: str(METADATA_TOKEN_TTL_SECONDS)},
            )
        except IdentityExchangeFailed as exc:
            if exc.status_code in (404, 405, 503):
                return None
            raise
        token = answer.text.strip()
        return token or None

    async def _security_key(self) -> KeyCredentials:
        token = self._session_token
        return await self._http.credentials(
            "get security key from metadata",
            "GET",
            self._endpoint + METADATA_SECURITY_KEY_PATH,
            headers={METADATA_TOKEN_HEADER: token} if token else None,
            secrets=(token,) if token else (),
        )


@dataclass(frozen=True)
class PodIdentityProvider:
    """CCE pod identity (the SDK's PodIdentityAccessor): the pod's token in
    `Authorization`, an empty JSON object as the body, POSTed to the agent's URI
    (`HC_CONTAINER_CREDENTIALS_FULL_URI`)."""

    http: IdentityHttp = field(repr=False, compare=False)
    uri: str
    token: TokenSource = field(repr=False, compare=False)

    @property
    def identity(self) -> str:
        return f"pod-identity:{self.uri}"

    async def fetch(self) -> KeyCredentials:
        token = await self.token()
        return await self.http.credentials(
            "get pod identity credentials",
            "POST",
            self.uri,
            headers={"Authorization": token},
            json_body={},
            secrets=(token,),
        )


@dataclass(frozen=True, kw_only=True)
class AssumeAgencyProvider(_StsSession):
    """Cross-account: STS AssumeAgency (`POST /v5/agencies/assume`), signed with
    the source's credentials (and its security token), for an agency that trusts
    the source's account or agency. `source` is usually the cache's view of
    another provider, so the source is not re-exchanged on every assume."""

    agency_urn: str
    source: Callable[[], Awaitable[KeyCredentials]] = field(repr=False, compare=False)
    source_identity: str

    @property
    def identity(self) -> str:
        return f"assume:{self.agency_urn}<-{self.source_identity}"

    async def fetch(self) -> KeyCredentials:
        return await self._session(
            "assume agency",
            ASSUME_AGENCY_PATH,
            {"agency_urn": self.agency_urn},
            signer=await self.source(),
        )
