"""The simulated cloud's identity side: OIDC providers, agencies, trust, and proof.

Configuration (through `PUT /_sim/identity`, `simulate --identity-config FILE`,
or `state.identity.configure(...)`), camelCase as in the control API:

    credentialLifetimeSeconds: 3600     # cap on every issued lifetime (tests: seconds)
    providers:                          # IAM identity providers of type OIDC
      - urn: iam::<account>:identity-provider:<name>
        idpId: <name>                   # the X-Idp-Id of the two-step IAM path
        issuer: https://kubernetes.default.svc.cluster.local
        audiences: [sts.myhuaweicloud.com]
        discoveryUrl: https://127.0.0.1:6443   # fetch discovery + JWKS from here, over TLS
        caFile: /path/to/ca.crt                # ... trusting this CA
        jwks: {keys: [...]}             # or the signing keys inline (IAM's "signing key" field)
        agency: iam::<account>:agency:<name>   # the agency the IAM path maps users to
    agencies:
      - urn: iam::<account>:agency:<name>
        projectIds: [<32 hex>]          # what its credentials may act on in CCE
        trustedSubjects: [{provider: <urn>, subject: "system:serviceaccount:NS:NAME"}]
        trustedAgencies: [<agency urn>] # AssumeAgency from a session of these
        trustedAccessKeys: [<AK>]       # AssumeAgency signed with these long-lived keys
    metadataAgency: <agency urn>        # the node's agency (ECS metadata), or none
    podIdentity:
      provider: <provider urn>          # whose tokens the pod-identity agent accepts
      associations: [{namespace, serviceAccount, agency}]

A ServiceAccount token is verified for real: its signature against the provider's
JWKS (fetched from the issuer's OIDC discovery document, or given inline), its
issuer, audience, expiry, and its subject against the agency's trust. Nothing
here sends anything off loopback: discovery and JWKS are fetched only from
loopback addresses.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import ssl
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import yaml
from pydantic import Field, ValidationError
from yarl import URL

from cce_upgrade_watch.simulator.scenarios import _Schema

#: JWKS fetched from an issuer are reused this long (a key rotation shows within it).
JWKS_TTL_SECONDS = 60.0
_ALGORITHMS = ["RS256", "ES256"]
_ALPHANUMERIC = string.ascii_uppercase + string.digits


class IdentityConfigError(ValueError):
    """The identity configuration is not usable; the message says why."""


class TokenRejected(Exception):
    """A presented ServiceAccount token is not accepted. The message never holds it."""


class ProviderModel(_Schema):
    urn: str = Field(min_length=1)
    idp_id: str | None = Field(default=None, alias="idpId")
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    discovery_url: str | None = Field(default=None, alias="discoveryUrl")
    ca_file: str | None = Field(default=None, alias="caFile")
    jwks: dict[str, Any] | None = None
    agency: str | None = None


class TrustedSubject(_Schema):
    provider: str
    subject: str


class AgencyModel(_Schema):
    urn: str = Field(min_length=1)
    project_ids: list[str] = Field(default_factory=list, alias="projectIds")
    trusted_subjects: list[TrustedSubject] = Field(default_factory=list, alias="trustedSubjects")
    trusted_agencies: list[str] = Field(default_factory=list, alias="trustedAgencies")
    trusted_access_keys: list[str] = Field(default_factory=list, alias="trustedAccessKeys")


class Association(_Schema):
    namespace: str
    service_account: str = Field(alias="serviceAccount")
    agency: str


class PodIdentityModel(_Schema):
    provider: str
    associations: list[Association] = Field(default_factory=list)


class IdentityConfig(_Schema):
    credential_lifetime_seconds: float | None = Field(
        default=None, alias="credentialLifetimeSeconds", gt=0
    )
    providers: list[ProviderModel] = Field(default_factory=list)
    agencies: list[AgencyModel] = Field(default_factory=list)
    metadata_agency: str | None = Field(default=None, alias="metadataAgency")
    pod_identity: PodIdentityModel | None = Field(default=None, alias="podIdentity")

    def provider(self, urn: str) -> ProviderModel | None:
        return next((p for p in self.providers if p.urn == urn), None)

    def provider_by_idp_id(self, idp_id: str) -> ProviderModel | None:
        return next((p for p in self.providers if p.idp_id == idp_id), None)

    def agency(self, urn: str) -> AgencyModel | None:
        return next((a for a in self.agencies if a.urn == urn), None)


def parse_identity_config(data: Any) -> IdentityConfig:
    try:
        config = IdentityConfig.model_validate(data or {})
    except ValidationError as exc:
        raise IdentityConfigError(f"invalid identity configuration: {exc}") from None
    for provider in config.providers:
        if provider.jwks is None and provider.discovery_url is None:
            raise IdentityConfigError(f"provider {provider.urn}: give jwks or discoveryUrl")
    return config


def load_identity_config(path: str | Path) -> IdentityConfig:
    """A YAML (or JSON) file in the shape above."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise IdentityConfigError(f"cannot read {path}: {exc}") from None
    return parse_identity_config(data)


@dataclass(frozen=True, slots=True)
class Issued:
    """Temporary credentials handed out, and what they stand for."""

    access_key: str
    secret_key: str = field(repr=False)
    security_token: str = field(repr=False)
    expires_at: float
    agency: str


@dataclass
class _Jwks:
    keys: jwt.PyJWKSet
    fetched_at: float


def _is_loopback_url(url: str) -> bool:
    host = URL(url).host or ""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenVerifier:
    """Checks ServiceAccount tokens against a provider's keys, issuer and audiences."""

    def __init__(self) -> None:
        self._jwks: dict[str, _Jwks] = {}

    def clear(self) -> None:
        self._jwks.clear()

    async def verify(self, token: str, provider: ProviderModel) -> dict[str, Any]:
        """The token's claims, or `TokenRejected` saying why (never quoting it)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("the id token is not a JWT") from None
        kid = header.get("kid")
        key = await self._key(provider, kid, refresh=False) or await self._key(
            provider, kid, refresh=True
        )
        if key is None:
            raise TokenRejected(f"no signing key {kid!r} at the identity provider {provider.urn}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=_ALGORITHMS,
                audience=provider.audiences,
                issuer=provider.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("the id token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(
                f"the id token's audience is not one the provider trusts {provider.audiences}"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenRejected(f"the id token was not issued by {provider.issuer}") from None
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the id token is not valid: {type(exc).__name__}") from None
        return claims

    async def _key(self, provider: ProviderModel, kid: Any, *, refresh: bool) -> jwt.PyJWK | None:
        keys = await self._keys(provider, refresh=refresh)
        for key in keys.keys:
            if kid is None or key.key_id == kid:
                return key
        return None

    async def _keys(self, provider: ProviderModel, *, refresh: bool) -> jwt.PyJWKSet:
        if provider.jwks is not None:
            try:
                return jwt.PyJWKSet.from_dict(provider.jwks)
            except jwt.PyJWTError as exc:
                raise TokenRejected(f"the provider's signing keys are unusable: {exc}") from None
        cached = self._jwks.get(provider.urn)
        if cached and not refresh and time.monotonic() - cached.fetched_at < JWKS_TTL_SECONDS:
            return cached.keys
        keys = await self._fetch(provider)
        self._jwks[provider.urn] = _Jwks(keys, time.monotonic())
        return keys

    async def _fetch(self, provider: ProviderModel) -> jwt.PyJWKSet:
        assert provider.discovery_url is not None
        base = provider.discovery_url.rstrip("/")
        context = ssl.create_default_context(cafile=provider.ca_file)
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                discovery = await _get_json(
                    session, base + "/.well-known/openid-configuration", context
                )
                if discovery.get("issuer") != provider.issuer:
                    raise TokenRejected(
                        f"the discovery document names issuer {discovery.get('issuer')!r}, "
                        f"not {provider.issuer!r}"
                    )
                jwks_uri = discovery.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise TokenRejected("the discovery document has no jwks_uri")
                return jwt.PyJWKSet.from_dict(await _get_json(session, jwks_uri, context))
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
            raise TokenRejected(
                f"the identity provider's keys could not be fetched: {type(exc).__name__}"
            ) from None


async def _get_json(session: aiohttp.ClientSession, url: str, context: ssl.SSLContext) -> Any:
    if not _is_loopback_url(url):
        # The simulator talks to loopback only (tests, the demo).
        raise ValueError(f"not a loopback URL: {url}")
    async with session.get(url, ssl=context if url.startswith("https:") else True) as answer:
        answer.raise_for_status()
        return json.loads(await answer.read())


def new_access_key() -> str:
    return "HST" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(17))


def new_secret(length: int) -> str:
    return secrets.token_urlsafe(length)[:length]


@dataclass
class IdentityState:
    """Configuration plus what was issued; lives on `SimulatorState.identity`."""

    config: IdentityConfig = field(default_factory=IdentityConfig)
    verifier: TokenVerifier = field(default_factory=TokenVerifier)
    #: access key -> what it was issued as (for AssumeAgency chaining and tests).
    sessions: dict[str, Issued] = field(default_factory=dict)
    unscoped_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    metadata_tokens: dict[str, float] = field(default_factory=dict)
    #: exchanges that succeeded, per kind ("oidc", "assume", "iam", "metadata", "pod-identity").
    exchanges: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)
    #: Injected outages: kind -> answers left that are 503 (-1: until cleared).
    outages: dict[str, int] = field(default_factory=dict)

    def take_outage(self, kind: str) -> bool:
        """True when this request of `kind` must fail (and one fewer remains)."""
        left = self.outages.get(kind, 0)
        if left == 0:
            return False
        if left > 0:
            self.outages[kind] = left - 1
        return True

    def forget_issued(self) -> None:
        """Drop sessions and tokens (their keys left the credential store on reset)."""
        self.sessions.clear()
        self.unscoped_tokens.clear()
        self.metadata_tokens.clear()

    def configure(self, config: IdentityConfig | dict[str, Any]) -> None:
        self.config = (
            config if isinstance(config, IdentityConfig) else parse_identity_config(config)
        )
        self.verifier.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(by_alias=True, exclude_none=True),
            "exchanges": dict(self.exchanges),
            "refusals": dict(self.refusals),
            "outages": {kind: left for kind, left in self.outages.items() if left},
            "sessions": [
                {"accessKey": s.access_key, "agency": s.agency, "expiresAt": s.expires_at}
                for s in self.sessions.values()
            ],
        }
