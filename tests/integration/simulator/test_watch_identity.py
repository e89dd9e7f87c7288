"""`spec.identity` of a watch, end to end against the simulator's STS, IAM,
metadata service and CCE API: the operator's `Identities` turns the spec into
temporary credentials that the CCE API accepts. ServiceAccount tokens come from
a test issuer standing in for the TokenRequest API (the e2e tests use the real
one); the minter records what it was asked, so the tests can see that only the
watch's own namespace is ever asked for a token.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.endpoints import EndpointPolicy
from cce_upgrade_watch.cce.errors import EndpointNotAllowed
from cce_upgrade_watch.cce.identity import (
    IdentityExchangeFailed,
    IdentityHttp,
    KeyCredentials,
    MetadataProvider,
)
from cce_upgrade_watch.cce.senders import AiohttpSender
from cce_upgrade_watch.commands import run as run_command
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.identities import Identities, IdentityNotAllowed, ambient_provider
from cce_upgrade_watch.simulator import (
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    SimulatorThread,
)
from cce_upgrade_watch.simulator.identity_app import POD_IDENTITY_PATH
from cce_upgrade_watch.spec import WatchSpec, parse_watch_spec
from tests.support.oidc import (
    AGENCY_URN,
    CROSS_AGENCY_URN,
    IDP_ID,
    PROVIDER_URN,
    TestIssuer,
    subject,
)

LOOPBACK = EndpointPolicy.from_flags([], allow_insecure_loopback=True)


class Minter:
    """The TokenRequest API's stand-in: a token for the asked ServiceAccount."""

    def __init__(self, issuer: TestIssuer) -> None:
        self.issuer = issuer
        self.asked: list[tuple[str, str, str, int]] = []

    async def __call__(self, namespace: str, name: str, audience: str, seconds: int) -> str:
        self.asked.append((namespace, name, audience, seconds))
        return self.issuer.token(subject(namespace, name), audience=audience, lifetime=seconds)


def _spec(url: str, identity: dict[str, Any]) -> WatchSpec:
    return parse_watch_spec(
        {
            "endpoint": url,
            "projectId": DEMO_PROJECT_ID,
            "clusterId": DEMO_CLUSTER_ID,
            "identity": identity,
        }
    )


def _oidc(account: str = "watcher", **extra: Any) -> dict[str, Any]:
    return {
        "oidc": {
            "serviceAccountName": account,
            "identityProviderUrn": PROVIDER_URN,
            "agencyUrn": AGENCY_URN,
            **extra,
        }
    }


async def _list(url: str, keys: KeyCredentials) -> int:
    async with CceClient() as client:
        workflows = await client.list_upgrade_workflows(
            DEMO_PROJECT_ID, DEMO_CLUSTER_ID, endpoint=url, auth=keys.auth(DEMO_PROJECT_ID)
        )
    return len(workflows)


async def _credentials(
    identities: Identities, namespace: str, spec: WatchSpec, url: str
) -> KeyCredentials:
    try:
        keys = await identities.credentials(namespace, spec)
        assert await _list(url, keys) > 0  # the CCE API accepts them
        return keys
    finally:
        await identities.http.aclose()


def _identities(minter: Minter, url: str, **kwargs: Any) -> Identities:
    http = IdentityHttp(AiohttpSender(httpx.Timeout(10.0), 2))
    return Identities(
        http=http,
        mint_token=minter,
        policy=kwargs.pop("policy", LOOPBACK),
        sts_endpoint=url,
        iam_endpoint=url,
        **kwargs,
    )


def test_oidc_identity_mints_a_token_in_the_watchs_own_namespace_and_works(
    simulator: SimulatorThread, issuer: TestIssuer
) -> None:
    minter = Minter(issuer)
    identities = _identities(minter, simulator.url)
    spec = _spec(simulator.url, _oidc())
    keys = asyncio.run(_credentials(identities, "team-a", spec, simulator.url))
    assert keys.security_token
    assert keys.expires_at is not None
    # The watch's namespace, the spec's ServiceAccount, the default audience, 600 s.
    assert minter.asked == [("team-a", "watcher", "sts.myhuaweicloud.com", 600)]


def test_credentials_are_cached_per_identity(
    simulator: SimulatorThread, issuer: TestIssuer
) -> None:
    minter = Minter(issuer)
    identities = _identities(minter, simulator.url)
    spec = _spec(simulator.url, _oidc())

    async def twice() -> None:
        try:
            first = await identities.credentials("team-a", spec)
            assert await identities.credentials("team-a", spec) is first
            identities.forget("team-a", spec)  # what a 401 from CCE does
            assert await identities.credentials("team-a", spec) is not first
        finally:
            await identities.http.aclose()

    asyncio.run(twice())
    assert len(minter.asked) == 2


def test_the_two_step_iam_path(simulator: SimulatorThread, issuer: TestIssuer) -> None:
    identities = _identities(Minter(issuer), simulator.url)
    spec = _spec(
        simulator.url,
        {"oidc": {"serviceAccountName": "watcher", "identityProviderId": IDP_ID}},
    )
    asyncio.run(_credentials(identities, "team-a", spec, simulator.url))


def test_a_service_account_the_agency_does_not_trust_is_refused(
    simulator: SimulatorThread, issuer: TestIssuer
) -> None:
    minter = Minter(issuer)
    identities = _identities(minter, simulator.url)
    # The same name in another namespace is another subject: refused by STS.
    spec = _spec(simulator.url, _oidc())
    with pytest.raises(IdentityExchangeFailed) as caught:
        asyncio.run(_credentials(identities, "team-b", spec, simulator.url))
    assert caught.value.reason == "IdentityExchangeFailed"
    assert caught.value.status_code == 403
    assert "eyJ" not in str(caught.value)  # no JWT in the message
    assert minter.asked[0][0] == "team-b"


def test_sts_must_pass_the_endpoint_policy(simulator: SimulatorThread, issuer: TestIssuer) -> None:
    minter = Minter(issuer)
    identities = _identities(minter, simulator.url, policy=EndpointPolicy())
    with pytest.raises(EndpointNotAllowed):
        asyncio.run(_credentials(identities, "team-a", _spec(simulator.url, _oidc()), ""))
    assert minter.asked == []  # no token minted, nothing sent


def test_cross_account_assume_agency_on_top_of_oidc(
    simulator: SimulatorThread, issuer: TestIssuer
) -> None:
    identities = _identities(Minter(issuer), simulator.url)
    spec = _spec(simulator.url, {**_oidc(), "assumeAgency": {"agencyUrn": CROSS_AGENCY_URN}})
    asyncio.run(_credentials(identities, "team-a", spec, simulator.url))
    exchanges = simulator.call(lambda state: dict(state.identity.exchanges))
    assert exchanges.get("oidc") == 1
    assert exchanges.get("assume") == 1


def test_ambient_identity_only_in_allowed_namespaces(
    simulator: SimulatorThread, issuer: TestIssuer
) -> None:
    minter = Minter(issuer)
    identities = _identities(minter, simulator.url, ambient_namespaces=frozenset({"ops"}))
    identities.ambient = MetadataProvider(identities.http, simulator.url)
    spec = _spec(simulator.url, {"ambient": {}})
    with pytest.raises(IdentityNotAllowed, match="'team-a' may not use"):
        asyncio.run(_credentials(identities, "team-a", spec, simulator.url))
    assert simulator.call(lambda state: dict(state.identity.exchanges)) == {}
    identities = _identities(minter, simulator.url, ambient_namespaces=frozenset({"ops"}))
    identities.ambient = MetadataProvider(identities.http, simulator.url)
    asyncio.run(_credentials(identities, "ops", spec, simulator.url))
    assert simulator.call(lambda state: dict(state.identity.exchanges)).get("metadata") == 1


def test_ambient_without_an_ambient_identity_is_refused(
    simulator: SimulatorThread, issuer: TestIssuer
) -> None:
    identities = _identities(Minter(issuer), simulator.url)
    with pytest.raises(IdentityNotAllowed, match="--ambient-credentials"):
        asyncio.run(
            _credentials(
                identities,
                "ops",
                _spec(simulator.url, {"ambient": {}}),
                simulator.url,
            )
        )


def test_ambient_kinds_from_the_environment(
    simulator: SimulatorThread, issuer: TestIssuer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(issuer.token(subject("team-a", "watcher")))
    environments = {
        "pod-identity": {
            "HC_CONTAINER_CREDENTIALS_FULL_URI": simulator.url + POD_IDENTITY_PATH,
            "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token),
        },
        "oidc": {
            "HUAWEICLOUD_OIDC_PROVIDER_URN": PROVIDER_URN,
            "HUAWEICLOUD_OIDC_AGENCY_URN": AGENCY_URN,
            "HUAWEICLOUD_OIDC_TOKEN_FILE": str(token),
        },
    }
    for kind, env in environments.items():
        identities = _identities(
            Minter(issuer), simulator.url, ambient_namespaces=frozenset({"ops"})
        )
        identities.ambient = ambient_provider(
            kind,
            http=identities.http,
            env=env,
            metadata_endpoint=None,
            sts_endpoint=simulator.url,
            policy=LOOPBACK,
        )
        asyncio.run(
            _credentials(identities, "ops", _spec(simulator.url, {"ambient": {}}), simulator.url)
        )
    exchanges = simulator.call(lambda state: dict(state.identity.exchanges))
    assert exchanges.get("pod-identity") == 1
    assert exchanges.get("oidc") == 1


@pytest.mark.parametrize(
    ("kind", "env", "sts", "message"),
    [
        ("pod-identity", {}, None, "needs the variables HC_CONTAINER_CREDENTIALS_FULL_URI"),
        ("oidc", {"HUAWEICLOUD_OIDC_PROVIDER_URN": PROVIDER_URN}, None, "needs --sts-endpoint"),
        (
            "oidc",
            {"HUAWEICLOUD_OIDC_PROVIDER_URN": PROVIDER_URN},
            "http://127.0.0.1:1",
            "needs both HUAWEICLOUD_OIDC_PROVIDER_URN and HUAWEICLOUD_OIDC_AGENCY_URN",
        ),
        ("metadata", {}, None, "needs --metadata-endpoint"),
    ],
)
def test_a_half_configured_ambient_identity_is_refused_at_start(
    kind: str, env: dict[str, str], sts: str | None, message: str
) -> None:
    http = IdentityHttp(AiohttpSender(httpx.Timeout(1.0), 1))
    with pytest.raises(ValueError, match=message):
        ambient_provider(
            kind, http=http, env=env, metadata_endpoint=None, sts_endpoint=sts, policy=LOOPBACK
        )


def test_run_refuses_to_start_with_a_half_configured_ambient_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HC_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", raising=False)
    with pytest.raises(SystemExit, match=r"--ambient-credentials pod-identity: .*needs"):
        run_command._check_ambient(OperatorConfig(ambient_credentials="pod-identity"))


def test_credentials_of_identities_no_watch_uses_are_dropped(
    simulator: SimulatorThread, issuer: TestIssuer
) -> None:
    identities = _identities(Minter(issuer), simulator.url)
    plain = _spec(simulator.url, _oidc())
    crossed = _spec(simulator.url, {**_oidc(), "assumeAgency": {"agencyUrn": CROSS_AGENCY_URN}})
    keys = identities.identities_of("team-a", crossed)
    assert keys == {
        f"assume:{CROSS_AGENCY_URN}<-oidc:team-a/watcher@{PROVIDER_URN}->{AGENCY_URN}",
        f"oidc:team-a/watcher@{PROVIDER_URN}->{AGENCY_URN}",
    }

    async def run() -> None:
        try:
            await identities.credentials("team-a", crossed)
            assert len(identities.cache) == 2  # the assumed agency and its source
            identities.retain(identities.identities_of("team-a", plain))
            assert len(identities.cache) == 1  # the source, still used by `plain`
            identities.retain(set())
            assert len(identities.cache) == 0
        finally:
            await identities.http.aclose()

    asyncio.run(run())
