"""Keyless credentials: temporary AK/SK + security token obtained from an identity.

Huawei Cloud hands out temporary credentials in five ways, and the official SDK
(`huaweicloudsdkcore.auth.provider` / `.internal`, `huaweicloudsdksts`) implements
each client-side; these modules speak the same requests (the SDK is the oracle:
`tests/integration/simulator/test_identity_sdk.py` runs it against the simulator):

- `OidcStsProvider`: a ServiceAccount (OIDC) token exchanged at STS,
  `POST /v5/agencies/assume-with-oidc` (AssumeAgencyWithOIDC).
- `FederatedIamProvider`: the older two-step IAM path, `POST
  /v3.0/OS-AUTH/id-token/tokens` with `X-Idp-Id`, then `POST
  /v3.0/OS-CREDENTIAL/securitytokens`.
- `MetadataProvider`: the node's agency, from the ECS metadata service.
- `PodIdentityProvider`: CCE pod identity (`HC_CONTAINER_CREDENTIALS_FULL_URI`).
- `AssumeAgencyProvider`: any of the above turned into credentials of an agency
  in another account, `POST /v5/agencies/assume` signed with the source's keys.

Every provider takes already resolved base URLs (`identity_endpoint` maps a
region to its STS or IAM host), so the caller decides which hosts credentials may
go to. `CredentialCache` keeps one set per identity and refreshes it before it
expires. Failures are `IdentityExchangeFailed` (condition reason
`IdentityExchangeFailed`); no message ever holds a token, key or security token.

Nothing here imports Kubernetes: a ServiceAccount token arrives through a
`TokenSource` (a file the kubelet rotates, or the operator's TokenRequest).
"""

from cce_upgrade_watch.cce.identity.cache import CredentialCache, refresh_margin
from cce_upgrade_watch.cce.identity.credentials import (
    KeyCredentials,
    parse_key_credentials,
)
from cce_upgrade_watch.cce.identity.errors import IdentityExchangeFailed
from cce_upgrade_watch.cce.identity.exchange import IdentityHttp
from cce_upgrade_watch.cce.identity.providers import (
    AssumeAgencyProvider,
    CredentialProvider,
    FederatedIamProvider,
    MetadataProvider,
    OidcStsProvider,
    PodIdentityProvider,
    StaticProvider,
    TokenSource,
    agency_urn,
    token_file,
)
from cce_upgrade_watch.cce.identity.regions import identity_endpoint

__all__ = [
    "AssumeAgencyProvider",
    "CredentialCache",
    "CredentialProvider",
    "FederatedIamProvider",
    "IdentityExchangeFailed",
    "IdentityHttp",
    "KeyCredentials",
    "MetadataProvider",
    "OidcStsProvider",
    "PodIdentityProvider",
    "StaticProvider",
    "TokenSource",
    "agency_urn",
    "identity_endpoint",
    "parse_key_credentials",
    "refresh_margin",
    "token_file",
]
