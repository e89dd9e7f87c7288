"""Keyless credentials from the environment, with the official SDK's variable names.

For `check`, so a user can try a path without the operator. The names are those
of `huaweicloudsdkcore.auth.provider` (the SDK is the reference; note that its
OIDC token file variable is `HUAWEICLOUD_OIDC_TOKEN_FILE`):

    OIDC federation via STS   HUAWEICLOUD_OIDC_PROVIDER_URN, HUAWEICLOUD_OIDC_AGENCY_URN,
                              HUAWEICLOUD_OIDC_ID_TOKEN or HUAWEICLOUD_OIDC_TOKEN_FILE,
                              HUAWEICLOUD_OIDC_DURATION_SECONDS, HUAWEICLOUD_OIDC_SESSION_NAME
    two-step IAM federation   HUAWEICLOUD_SDK_IDP_ID, HUAWEICLOUD_SDK_ID_TOKEN_FILE
    CCE pod identity          HC_CONTAINER_CREDENTIALS_FULL_URI,
                              HC_CONTAINER_AUTHORIZATION_TOKEN_FILE
    endpoints                 HUAWEICLOUD_SDK_STS_ENDPOINT, HUAWEICLOUD_SDK_IAM_ENDPOINT
                              (else the region's STS and IAM hosts)

The first complete set wins, in this order (the SDK's chain also puts OIDC first).
The ECS metadata service has no variable: it is used when asked for by URL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import httpx

from cce_upgrade_watch.cce.endpoints import is_loopback_host, validate_endpoint
from cce_upgrade_watch.cce.errors import CredentialsMissing, EndpointError
from cce_upgrade_watch.cce.identity.exchange import IdentityHttp
from cce_upgrade_watch.cce.identity.providers import (
    DEFAULT_DURATION_SECONDS,
    DEFAULT_SESSION_NAME,
    CredentialProvider,
    FederatedIamProvider,
    MetadataProvider,
    OidcStsProvider,
    PodIdentityProvider,
    TokenSource,
    token_file,
)
from cce_upgrade_watch.cce.identity.regions import IdentityService, identity_endpoint

OIDC_PROVIDER_URN = "HUAWEICLOUD_OIDC_PROVIDER_URN"
OIDC_AGENCY_URN = "HUAWEICLOUD_OIDC_AGENCY_URN"
OIDC_ID_TOKEN = "HUAWEICLOUD_OIDC_ID_TOKEN"  # noqa: S105 (a variable name)
OIDC_TOKEN_FILE = "HUAWEICLOUD_OIDC_TOKEN_FILE"  # noqa: S105 (a variable name)
OIDC_DURATION_SECONDS = "HUAWEICLOUD_OIDC_DURATION_SECONDS"
OIDC_SESSION_NAME = "HUAWEICLOUD_OIDC_SESSION_NAME"
IDP_ID = "HUAWEICLOUD_SDK_IDP_ID"
ID_TOKEN_FILE = "HUAWEICLOUD_SDK_ID_TOKEN_FILE"  # noqa: S105 (a variable name)
POD_IDENTITY_URI = "HC_CONTAINER_CREDENTIALS_FULL_URI"
POD_IDENTITY_TOKEN_FILE = "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105 (a variable name)
STS_ENDPOINT = "HUAWEICLOUD_SDK_STS_ENDPOINT"
IAM_ENDPOINT = "HUAWEICLOUD_SDK_IAM_ENDPOINT"

_ENDPOINT_VARIABLES: dict[IdentityService, str] = {"sts": STS_ENDPOINT, "iam": IAM_ENDPOINT}


def service_endpoint(env: Mapping[str, str], service: IdentityService, region: str | None) -> str:
    """The STS or IAM endpoint: the SDK's variable, else the region's host.

    Checked like a CCE endpoint (https, or http to loopback only); the operator's
    endpoint allow-list is applied by the caller on top.
    """
    variable = _ENDPOINT_VARIABLES[service]
    configured = env.get(variable, "").strip()
    if configured:
        try:
            return validate_endpoint(configured)
        except EndpointError as exc:
            raise EndpointError(f"{variable}: {exc}") from None
    if region:
        return identity_endpoint(service, region)
    raise EndpointError(f"set {variable} (or give --region) to reach {service.upper()}")


def node_local_endpoint(url: str, what: str) -> str:
    """A metadata or pod-identity address: https anywhere, or plain http only to a
    loopback or link-local host (the node's own services, which serve plain http)."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError):
        raise EndpointError(f"the {what} address is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.userinfo:
        raise EndpointError(f"the {what} address must be an http:// or https:// URL")
    if parsed.scheme == "http" and not (
        is_loopback_host(parsed.host) or _is_link_local(parsed.host)
    ):
        raise EndpointError(
            f"the {what} address uses plain http:// to {parsed.host}: only a loopback or "
            "link-local host (the node's own service) may be reached without TLS"
        )
    return str(parsed).rstrip("/")


def _is_link_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_link_local
    except ValueError:
        return False


def _literal(token: str) -> TokenSource:
    async def read() -> str:
        return token

    return read


def _duration(env: Mapping[str, str]) -> int:
    text = env.get(OIDC_DURATION_SECONDS, "").strip()
    if not text:
        return DEFAULT_DURATION_SECONDS
    try:
        return int(text)
    except ValueError:
        raise CredentialsMissing(f"{OIDC_DURATION_SECONDS} is not a whole number") from None


def provider_from_env(
    env: Mapping[str, str],
    *,
    http: IdentityHttp,
    region: str | None,
    metadata_endpoint: str | None = None,
) -> CredentialProvider | None:
    """The keyless provider the environment (or `metadata_endpoint`) describes, or None.

    Raises `CredentialsMissing` for a half-configured path (naming the missing
    variable) and `EndpointError` for an unusable address.
    """
    if metadata_endpoint:
        return MetadataProvider(http, node_local_endpoint(metadata_endpoint, "metadata"))
    provider_urn, agency = env.get(OIDC_PROVIDER_URN, "").strip(), env.get(OIDC_AGENCY_URN, "")
    if provider_urn or agency.strip():
        if not (provider_urn and agency.strip()):
            raise CredentialsMissing(
                f"OIDC federation needs both {OIDC_PROVIDER_URN} and {OIDC_AGENCY_URN}"
            )
        literal = env.get(OIDC_ID_TOKEN, "").strip()
        path = env.get(OIDC_TOKEN_FILE, "").strip()
        if not (literal or path):
            raise CredentialsMissing(f"OIDC federation needs {OIDC_ID_TOKEN} or {OIDC_TOKEN_FILE}")
        try:
            return OidcStsProvider(
                http=http,
                sts_endpoint=service_endpoint(env, "sts", region),
                provider_urn=provider_urn,
                agency_urn=agency.strip(),
                token=_literal(literal) if literal else token_file(path),
                subject=path or "environment",
                duration_seconds=_duration(env),
                session_name=env.get(OIDC_SESSION_NAME, "").strip() or DEFAULT_SESSION_NAME,
            )
        except ValueError as exc:  # the duration
            raise CredentialsMissing(f"{OIDC_DURATION_SECONDS}: {exc}") from None
    idp_id, id_token_file = env.get(IDP_ID, "").strip(), env.get(ID_TOKEN_FILE, "").strip()
    if idp_id or id_token_file:
        if not (idp_id and id_token_file):
            raise CredentialsMissing(f"IAM federation needs both {IDP_ID} and {ID_TOKEN_FILE}")
        return FederatedIamProvider(
            http=http,
            iam_endpoint=service_endpoint(env, "iam", region),
            idp_id=idp_id,
            token=token_file(id_token_file),
            subject=id_token_file,
        )
    uri, pod_token = env.get(POD_IDENTITY_URI, "").strip(), env.get(POD_IDENTITY_TOKEN_FILE, "")
    if uri or pod_token.strip():
        if not (uri and pod_token.strip()):
            raise CredentialsMissing(
                f"pod identity needs both {POD_IDENTITY_URI} and {POD_IDENTITY_TOKEN_FILE}"
            )
        return PodIdentityProvider(
            http=http,
            uri=node_local_endpoint(uri, "pod identity"),
            token=token_file(pod_token.strip()),
        )
    return None
