"""A watch's `spec.identity` turned into temporary credentials for its CCE calls.

The providers and the cache are phase A's (`cce/identity/`); this module decides,
per watch, which provider stands for its identity, and keeps the trust boundary:
- `oidc`: a token for the named ServiceAccount *of the watch's own namespace*,
  minted through the TokenRequest API (there is no namespace field to name
  another), for the spec's audience, exchanged at STS (or the two-step IAM path);
- `ambient`: the operator's own identity (`run --ambient-credentials`), only for
  namespaces the admin listed (`--ambient-credentials-namespaces`); anywhere else
  the watch gets `IdentityNotAllowed` and nothing is sent;
- `assumeAgency`: the source's credentials (any of the above, or the Secret's
  keys) turned into an agency's, usually in another account.

Every STS and IAM URL passes the operator's `EndpointPolicy` before a token or a
signature goes to it (`EndpointNotAllowed` otherwise), as CCE endpoints do.
Credentials are cached per identity by `CredentialCache`; the CCE client's 401
makes the poll loop `forget` the watch's identity so the next try exchanges anew.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from cce_upgrade_watch.cce.endpoints import EndpointPolicy
from cce_upgrade_watch.cce.errors import CceError
from cce_upgrade_watch.cce.identity import (
    AssumeAgencyProvider,
    CredentialCache,
    CredentialProvider,
    FederatedIamProvider,
    IdentityHttp,
    KeyCredentials,
    OidcStsProvider,
    identity_endpoint,
)
from cce_upgrade_watch.cce.identity import env as identity_env
from cce_upgrade_watch.cce.identity.errors import IdentityExchangeFailed
from cce_upgrade_watch.cce.identity.providers import MetadataProvider
from cce_upgrade_watch.spec import Identity, WatchSpec

#: Mints a ServiceAccount token: (namespace, name, audience, seconds) -> token.
TokenMinter = Callable[[str, str, str, int], Awaitable[str]]
#: The Secret's keys of a watch, as the source of an `assumeAgency`.
SecretSource = Callable[[], Awaitable[KeyCredentials]]

#: Lifetime asked of the TokenRequest API: its minimum (600 s). The token is used
#: once, at once, for one exchange; a longer one would only be more to leak.
TOKEN_SECONDS = 600


class IdentityNotAllowed(Exception):
    """The watch asks for an identity the operator's admin has not made available
    to its namespace: a person must act (the admin, or the spec's author)."""

    reason = "IdentityNotAllowed"


@dataclass
class Identities:
    """Shared by every poll loop; created once at start-up."""

    http: IdentityHttp
    mint_token: TokenMinter
    policy: EndpointPolicy = field(default_factory=EndpointPolicy)
    #: The operator's own identity, when the admin turned it on, and who may use it.
    ambient: CredentialProvider | None = None
    ambient_namespaces: frozenset[str] = frozenset()
    #: STS / IAM endpoints for every watch (`run --sts-endpoint`, `--iam-endpoint`);
    #: unset: the region's (`identity_endpoint`).
    sts_endpoint: str | None = None
    iam_endpoint: str | None = None
    cache: CredentialCache = field(default_factory=CredentialCache)

    async def credentials(
        self, namespace: str, spec: WatchSpec, secret: SecretSource | None = None
    ) -> KeyCredentials:
        """Valid temporary credentials for the watch's identity (cached).

        Raises `IdentityExchangeFailed`, `IdentityNotAllowed`, `EndpointNotAllowed`
        (or `EndpointError`), and whatever `secret` raises."""
        return await self.cache.get(self.provider(namespace, spec, secret))

    def forget(self, namespace: str, spec: WatchSpec) -> None:
        """The cloud refused the credentials: the next `credentials` exchanges anew."""
        for identity in self.identities_of(namespace, spec):
            if not identity.startswith("secret:"):
                self.cache.forget(identity)

    def identities_of(self, namespace: str, spec: WatchSpec) -> set[str]:
        """The cache keys a watch uses: its identity and, under an assumeAgency, its
        source's (empty when the spec names none that can be resolved)."""
        try:
            provider = self.provider(namespace, spec, _no_secret)
        except (IdentityNotAllowed, ValueError, CceError):
            return set()
        keys = {provider.identity}
        if isinstance(provider, AssumeAgencyProvider):
            keys.add(provider.source_identity)
        return keys

    def retain(self, identities: set[str]) -> None:
        """Drop the cached credentials of every identity no live watch uses."""
        self.cache.retain(identities)

    def provider(
        self, namespace: str, spec: WatchSpec, secret: SecretSource | None = None
    ) -> CredentialProvider:
        identity = spec.identity or Identity()
        source: CredentialProvider | None = None
        source_identity: str
        if identity.oidc is not None:
            source = self._oidc(namespace, spec)
            source_identity = source.identity
        elif identity.ambient is not None:
            source = self._ambient(namespace)
            source_identity = source.identity
        else:
            if secret is None:
                raise ValueError("a Secret source needs the Secret's keys")
            ref = spec.credentials_secret_ref
            source_identity = f"secret:{namespace}/{ref.name if ref else ''}"
        assume = identity.assume_agency
        if assume is None:
            if source is None:
                raise ValueError("a Secret without assumeAgency is not an identity")
            return source
        sts = self._checked(self.sts_endpoint, "sts", spec)
        cache = self.cache
        base = source

        async def source_keys() -> KeyCredentials:
            if base is not None:
                return await cache.get(base)
            assert secret is not None
            return await secret()

        return AssumeAgencyProvider(
            http=self.http,
            sts_endpoint=sts,
            duration_seconds=assume.duration_seconds,
            agency_urn=assume.urn,
            source=source_keys,
            source_identity=source_identity,
        )

    def _oidc(self, namespace: str, spec: WatchSpec) -> CredentialProvider:
        assert spec.identity is not None
        assert spec.identity.oidc is not None
        oidc = spec.identity.oidc
        mint = self.mint_token
        account = oidc.service_account_name

        async def token() -> str:
            # The watch's own namespace, always: the trust boundary.
            return await mint(namespace, account, oidc.audience, TOKEN_SECONDS)

        subject = f"{namespace}/{account}"
        if oidc.identity_provider_urn is not None:
            assert oidc.agency_urn is not None  # the spec's rule
            return OidcStsProvider(
                http=self.http,
                sts_endpoint=self._checked(self.sts_endpoint, "sts", spec),
                duration_seconds=oidc.duration_seconds,
                provider_urn=oidc.identity_provider_urn,
                agency_urn=oidc.agency_urn,
                token=token,
                subject=subject,
            )
        assert oidc.identity_provider_id is not None
        return FederatedIamProvider(
            http=self.http,
            iam_endpoint=self._checked(self.iam_endpoint, "iam", spec),
            idp_id=oidc.identity_provider_id,
            token=token,
            subject=subject,
            duration_seconds=oidc.duration_seconds,
        )

    def _ambient(self, namespace: str) -> CredentialProvider:
        if self.ambient is None:
            raise IdentityNotAllowed(
                "spec.identity.ambient: this operator has no ambient identity (its admin "
                "has not started it with --ambient-credentials); use identity.oidc or "
                "credentialsSecretRef"
            )
        if namespace not in self.ambient_namespaces:
            raise IdentityNotAllowed(
                f"spec.identity.ambient: namespace {namespace!r} may not use the operator's "
                "own identity (not in --ambient-credentials-namespaces); nothing was sent"
            )
        return self.ambient

    def _checked(self, configured: str | None, service: str, spec: WatchSpec) -> str:
        """The STS or IAM URL for this watch, allowed by the endpoint policy."""
        if configured:
            url = configured
        elif spec.region:
            url = identity_endpoint("sts" if service == "sts" else "iam", spec.region)
        else:
            raise IdentityExchangeFailed(
                f"the watch sets no region, so the {service.upper()} endpoint is unknown: "
                f"the operator's admin must set run --{service}-endpoint"
            )
        self.policy.check(url)
        return url


#: The environment variables each ambient kind reads (the official SDK's names).
_AMBIENT_VARIABLES = {
    "pod-identity": (identity_env.POD_IDENTITY_URI, identity_env.POD_IDENTITY_TOKEN_FILE),
    "oidc": (
        identity_env.OIDC_PROVIDER_URN,
        identity_env.OIDC_AGENCY_URN,
        identity_env.OIDC_TOKEN_FILE,
        identity_env.OIDC_DURATION_SECONDS,
        identity_env.OIDC_SESSION_NAME,
    ),
}


def ambient_provider(
    kind: str,
    *,
    http: IdentityHttp,
    env: Mapping[str, str],
    metadata_endpoint: str | None,
    sts_endpoint: str | None,
    policy: EndpointPolicy,
) -> CredentialProvider:
    """The operator's own identity for `run --ambient-credentials KIND`.

    Raises `ValueError` (`CredentialsMissing`, `EndpointError`, `EndpointNotAllowed`)
    with a message for the admin when the kind is not fully configured; `run`
    refuses to start then, rather than failing every ambient watch later.
    """
    if kind == "metadata":
        if not metadata_endpoint:
            raise ValueError("--ambient-credentials metadata needs --metadata-endpoint")
        return MetadataProvider(
            http, identity_env.node_local_endpoint(metadata_endpoint, "metadata")
        )
    if kind not in _AMBIENT_VARIABLES:
        raise ValueError(f"unknown ambient credentials kind {kind!r}")
    # Only this kind's variables: another path configured in the same pod must
    # not be picked instead of the one the admin asked for.
    chosen = {name: env[name] for name in _AMBIENT_VARIABLES[kind] if name in env}
    if kind == "oidc":
        if not sts_endpoint:
            raise ValueError("--ambient-credentials oidc needs --sts-endpoint")
        policy.check(sts_endpoint)
        chosen[identity_env.STS_ENDPOINT] = sts_endpoint
    provider = identity_env.provider_from_env(chosen, http=http, region=None)
    if provider is None:
        names = ", ".join(_AMBIENT_VARIABLES[kind][:2])
        raise ValueError(f"--ambient-credentials {kind} needs the variables {names}")
    return provider


async def _no_secret() -> KeyCredentials:
    raise AssertionError("not called: only the provider's identity is needed")
