"""The operator's credential providers against the simulator's identity side.

The same simulator the official SDK's providers are tested against
(`test_identity_sdk.py`), so ours, the SDK and the simulator agree. Each test
obtains credentials through one path and lists workflows with them through
`CceClient`; refusals must be `IdentityExchangeFailed` and quote no secret.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.errors import CredentialsRejected
from cce_upgrade_watch.cce.identity import (
    AssumeAgencyProvider,
    CredentialCache,
    FederatedIamProvider,
    IdentityExchangeFailed,
    IdentityHttp,
    KeyCredentials,
    MetadataProvider,
    OidcStsProvider,
    PodIdentityProvider,
    StaticProvider,
    token_file,
)
from cce_upgrade_watch.cce.senders import HttpxSender
from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    ManualClock,
    SimulatorServer,
)
from cce_upgrade_watch.simulator.identity_app import POD_IDENTITY_PATH
from tests.support.oidc import (
    AGENCY_URN,
    CROSS_AGENCY_URN,
    IDP_ID,
    PROVIDER_URN,
    TestIssuer,
    identity_config,
    subject,
)


class WallClock:
    """The simulator's wall clock (what expiry is checked against), moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    sim: SimulatorServer
    issuer: TestIssuer
    http: IdentityHttp
    client: CceClient
    wall: WallClock

    def oidc(self, token: str, **options: object) -> OidcStsProvider:
        async def source() -> str:
            return token

        return OidcStsProvider(
            http=self.http,
            sts_endpoint=self.sim.url,
            provider_urn=PROVIDER_URN,
            agency_urn=AGENCY_URN,
            token=source,
            subject="team-a/watcher",
            **options,  # type: ignore[arg-type]
        )

    async def lists(self, credentials: KeyCredentials) -> int:
        workflows = await self.client.list_upgrade_workflows(
            DEMO_PROJECT_ID,
            DEMO_CLUSTER_ID,
            endpoint=self.sim.url,
            auth=credentials.auth(DEMO_PROJECT_ID),
        )
        return len(workflows)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    wall = WallClock()
    issuer = TestIssuer()
    sim = SimulatorServer("history", clock=ManualClock(), wall_clock=wall)
    sim.state.identity.configure(
        identity_config(
            project_id=DEMO_PROJECT_ID, jwks=issuer.jwks(), trusted_access_keys=[DEMO_ACCESS_KEY]
        )
    )
    async with sim:
        sender = HttpxSender(httpx.AsyncHTTPTransport(), httpx.Timeout(5.0), 4)
        http = IdentityHttp(sender)
        async with CceClient() as client:
            yield World(sim, issuer, http, client, wall)
        await http.aclose()


async def test_oidc_sts_credentials_work_until_they_expire(world: World) -> None:
    # A lifetime of 60 s: the wall clock moves past it, not past the 15 minutes
    # X-Sdk-Date may be off.
    world.sim.state.identity.configure(
        identity_config(project_id=DEMO_PROJECT_ID, jwks=world.issuer.jwks(), lifetime=60)
    )
    token = world.issuer.token(subject("team-a", "watcher"))
    credentials = await world.oidc(token, duration_seconds=900).fetch()
    assert credentials.security_token
    assert credentials.expires_at is not None
    assert await world.lists(credentials) > 0
    world.wall.now += 59
    assert await world.lists(credentials) > 0
    world.wall.now += 1
    with pytest.raises(CredentialsRejected, match="expired"):
        await world.lists(credentials)


async def test_oidc_sts_refuses_another_service_account_without_echoing_its_token(
    world: World,
) -> None:
    token = world.issuer.token(subject("team-b", "watcher"))
    with pytest.raises(IdentityExchangeFailed) as caught:
        await world.oidc(token).fetch()
    assert caught.value.reason == "IdentityExchangeFailed"
    assert caught.value.status_code == 403
    assert "does not trust system:serviceaccount:team-b:watcher" in str(caught.value)
    assert token not in str(caught.value)
    assert world.sim.state.identity.sessions == {}


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"audience": "someone-else"}, "audience"),
        ({"issuer": "https://elsewhere.example"}, "not issued by"),
        ({"lifetime": -10}, "expired"),
    ],
)
async def test_oidc_sts_checks_audience_issuer_and_expiry(
    world: World, options: dict[str, object], why: str
) -> None:
    token = world.issuer.token(subject("team-a", "watcher"), **options)  # type: ignore[arg-type]
    with pytest.raises(IdentityExchangeFailed, match=why):
        await world.oidc(token).fetch()


async def test_oidc_sts_refuses_a_token_signed_by_another_key(world: World) -> None:
    forged = TestIssuer().token(subject("team-a", "watcher"))
    with pytest.raises(IdentityExchangeFailed, match="not valid"):
        await world.oidc(forged).fetch()


async def test_two_step_iam_path(world: World, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(world.issuer.token(subject("team-a", "watcher")) + "\n")
    provider = FederatedIamProvider(
        http=world.http,
        iam_endpoint=world.sim.url,
        idp_id=IDP_ID,
        token=token_file(path),
        subject="team-a/watcher",
    )
    assert await world.lists(await provider.fetch()) > 0
    assert world.sim.state.identity.exchanges == {"iam": 1}


async def test_metadata_provider_and_a_lost_session_token(world: World) -> None:
    provider = MetadataProvider(world.http, world.sim.url)
    assert await world.lists(await provider.fetch()) > 0
    world.sim.state.identity.metadata_tokens.clear()  # the session token expires
    assert await world.lists(await provider.fetch()) > 0
    assert world.sim.state.identity.exchanges == {"metadata": 2}


async def test_metadata_without_a_node_agency_is_an_exchange_failure(world: World) -> None:
    config = world.sim.state.identity.config.model_copy(update={"metadata_agency": None})
    world.sim.state.identity.configure(config)
    with pytest.raises(IdentityExchangeFailed, match="configure Cloud Service Agency"):
        await MetadataProvider(world.http, world.sim.url).fetch()
    # Not a session problem: no second session token is asked for.
    assert world.sim.state.identity.refusals == {"metadata": 1}


async def test_assume_agency_needs_a_signature(world: World) -> None:
    answer = await world.http.call(
        "probe", "GET", world.sim.url + "/_sim/identity"
    )  # the control API is open; AssumeAgency is not
    assert answer.status_code == 200
    with pytest.raises(IdentityExchangeFailed, match="needs an AK/SK signature"):
        await world.http.call(
            "assume agency",
            "POST",
            world.sim.url + "/v5/agencies/assume",
            headers={"X-Auth-Token": "some-token"},
            json_body={"agency_urn": CROSS_AGENCY_URN},
        )


async def test_pod_identity_provider(world: World, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(world.issuer.token(subject("team-a", "watcher")))
    provider = PodIdentityProvider(
        http=world.http, uri=world.sim.url + POD_IDENTITY_PATH, token=token_file(path)
    )
    assert await world.lists(await provider.fetch()) > 0
    path.write_text(world.issuer.token(subject("team-a", "other")))
    with pytest.raises(IdentityExchangeFailed, match="no pod identity association"):
        await provider.fetch()


async def test_assume_agency_from_an_oidc_session_and_from_static_keys(world: World) -> None:
    cache = CredentialCache()
    source = world.oidc(world.issuer.token(subject("team-a", "watcher")))
    crossed = AssumeAgencyProvider(
        http=world.http,
        sts_endpoint=world.sim.url,
        agency_urn=CROSS_AGENCY_URN,
        source=lambda: cache.get(source),
        source_identity=source.identity,
    )
    assert await world.lists(await cache.get(crossed)) > 0
    static = StaticProvider(KeyCredentials(DEMO_ACCESS_KEY, DEMO_SECRET_KEY))
    from_static = AssumeAgencyProvider(
        http=world.http,
        sts_endpoint=world.sim.url,
        agency_urn=CROSS_AGENCY_URN,
        source=static.fetch,
        source_identity=static.identity,
    )
    assert await world.lists(await from_static.fetch()) > 0
    assert world.sim.state.identity.exchanges == {"oidc": 1, "assume": 2}


async def test_assume_agency_refuses_an_untrusted_source(world: World) -> None:
    # The agency trusts sessions of AGENCY_URN, not of the cross agency itself.
    source = world.oidc(world.issuer.token(subject("team-a", "watcher")))
    first = await AssumeAgencyProvider(
        http=world.http,
        sts_endpoint=world.sim.url,
        agency_urn=CROSS_AGENCY_URN,
        source=source.fetch,
        source_identity=source.identity,
    ).fetch()

    async def crossed() -> KeyCredentials:
        return first

    with pytest.raises(IdentityExchangeFailed, match="does not trust a session of") as caught:
        await AssumeAgencyProvider(
            http=world.http,
            sts_endpoint=world.sim.url,
            agency_urn=CROSS_AGENCY_URN,
            source=crossed,
            source_identity="crossed",
        ).fetch()
    assert first.secret_key not in str(caught.value)
    assert first.security_token is not None
    assert first.security_token not in str(caught.value)


async def test_short_lived_credentials_are_renewed_before_they_expire(world: World) -> None:
    world.sim.state.identity.configure(
        identity_config(project_id=DEMO_PROJECT_ID, jwks=world.issuer.jwks(), lifetime=100)
    )
    token = world.issuer.token(subject("team-a", "watcher"), lifetime=3600)
    cache = CredentialCache(clock=lambda: datetime.fromtimestamp(world.wall.now, UTC))
    provider = world.oidc(token)
    first = await cache.get(provider)
    world.wall.now += 89  # margin: 10 % of 100 s; still before the renewal point
    assert await cache.get(provider) is first
    world.wall.now += 2  # past the renewal point, still before the expiry
    second = await cache.get(provider)
    assert second.access_key != first.access_key
    assert await world.lists(first) > 0  # the old key is still valid: renewed in time
    assert await world.lists(second) > 0
