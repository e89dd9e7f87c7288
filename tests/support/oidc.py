"""A test OIDC issuer: an RSA key, its JWKS, and ServiceAccount-shaped tokens.

For tests that need no control plane. The e2e tests use the real kube-apiserver's
issuer and TokenRequest instead.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "sts.myhuaweicloud.com"
ACCOUNT = "0123456789abcdef0123456789abcdef"
PROVIDER_URN = f"iam::{ACCOUNT}:identity-provider:kube"
IDP_ID = "kube"
AGENCY_URN = f"iam::{ACCOUNT}:agency:cce-reader"
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
CROSS_AGENCY_URN = f"iam::{OTHER_ACCOUNT}:agency:cce-reader-cross"
NODE_AGENCY_URN = f"iam::{ACCOUNT}:agency:node"
POD_AGENCY_URN = f"iam::{ACCOUNT}:agency:pod"


def subject(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


class TestIssuer:
    __test__ = False  # not a pytest class

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(
        self,
        sub: str,
        *,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        lifetime: float = 600,
        now: float | None = None,
    ) -> str:
        issued = time.time() if now is None else now
        claims = {
            "iss": issuer,
            "sub": sub,
            "aud": [audience],
            "iat": int(issued),
            "nbf": int(issued),
            "exp": int(issued + lifetime),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})


def identity_config(
    *,
    project_id: str,
    jwks: dict[str, Any] | None = None,
    discovery_url: str | None = None,
    ca_file: str | None = None,
    trusted: list[str] | None = None,
    lifetime: float | None = None,
    trusted_access_keys: list[str] | None = None,
) -> dict[str, Any]:
    """The simulator's identity configuration for every path of the tests."""
    provider: dict[str, Any] = {
        "urn": PROVIDER_URN,
        "idpId": IDP_ID,
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "agency": AGENCY_URN,
    }
    if jwks is not None:
        provider["jwks"] = jwks
    if discovery_url is not None:
        provider["discoveryUrl"] = discovery_url
    if ca_file is not None:
        provider["caFile"] = ca_file
    config: dict[str, Any] = {
        "providers": [provider],
        "agencies": [
            {
                "urn": AGENCY_URN,
                "projectIds": [project_id],
                "trustedSubjects": [
                    {"provider": PROVIDER_URN, "subject": s}
                    for s in (trusted or [subject("team-a", "watcher")])
                ],
            },
            {
                "urn": CROSS_AGENCY_URN,
                "projectIds": [project_id],
                "trustedAgencies": [AGENCY_URN],
                "trustedAccessKeys": trusted_access_keys or [],
            },
            {"urn": NODE_AGENCY_URN, "projectIds": [project_id]},
            {"urn": POD_AGENCY_URN, "projectIds": [project_id]},
        ],
        "metadataAgency": NODE_AGENCY_URN,
        "podIdentity": {
            "provider": PROVIDER_URN,
            "associations": [
                {"namespace": "team-a", "serviceAccount": "watcher", "agency": POD_AGENCY_URN}
            ],
        },
    }
    if lifetime is not None:
        config["credentialLifetimeSeconds"] = lifetime
    return config
