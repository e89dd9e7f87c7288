"""The simulator's identity configuration and outages, through `/_sim/identity`
and `simulate --identity-config`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from cce_upgrade_watch.cce.identity import IdentityExchangeFailed, IdentityHttp, OidcStsProvider
from cce_upgrade_watch.cce.senders import HttpxSender
from cce_upgrade_watch.simulator import DEMO_PROJECT_ID
from tests.integration.simulator.conftest import Launch
from tests.integration.simulator.test_cli import STARTUP_TIMEOUT, first_line, simulate
from tests.support.oidc import AGENCY_URN, PROVIDER_URN, TestIssuer, identity_config, subject


async def _oidc(url: str, token: str) -> None:
    async def source() -> str:
        return token

    http = IdentityHttp(HttpxSender(httpx.AsyncHTTPTransport(), httpx.Timeout(5.0), 2))
    try:
        await OidcStsProvider(
            http=http,
            sts_endpoint=url,
            provider_urn=PROVIDER_URN,
            agency_urn=AGENCY_URN,
            token=source,
            subject="team-a/watcher",
        ).fetch()
    finally:
        await http.aclose()


async def test_configuration_and_sessions_through_the_control_api(launch: Launch) -> None:
    sim = await launch("idle")
    issuer = TestIssuer()
    config = identity_config(project_id=DEMO_PROJECT_ID, jwks=issuer.jwks())
    shown = await sim.api.http.put(sim.server.url + "/_sim/identity", json=config)
    assert shown.status_code == 200, shown.text
    assert shown.json()["config"]["agencies"][0]["urn"] == AGENCY_URN
    await _oidc(sim.server.url, issuer.token(subject("team-a", "watcher")))
    described = await sim.api.control_ok("GET", "/identity")
    [session] = described["sessions"]
    assert session["agency"] == AGENCY_URN
    assert described["exchanges"] == {"oidc": 1}
    issued = sim.server.state.identity.sessions[session["accessKey"]]
    text = json.dumps(described)
    assert issued.secret_key not in text
    assert issued.security_token not in text


async def test_a_bad_configuration_is_refused_and_the_old_one_kept(launch: Launch) -> None:
    sim = await launch("idle")
    good = identity_config(project_id=DEMO_PROJECT_ID, jwks=TestIssuer().jwks())
    await sim.api.http.put(sim.server.url + "/_sim/identity", json=good)
    bad = {"providers": [{"urn": "p", "issuer": "i", "audiences": ["a"]}]}
    answer = await sim.api.http.put(sim.server.url + "/_sim/identity", json=bad)
    assert answer.status_code == 400
    assert "jwks or discoveryUrl" in answer.json()["error"]
    assert sim.server.state.identity.config.agency(AGENCY_URN) is not None


async def test_an_outage_fails_exchanges_then_ends(launch: Launch) -> None:
    sim = await launch("idle")
    issuer = TestIssuer()
    sim.server.state.identity.configure(
        identity_config(project_id=DEMO_PROJECT_ID, jwks=issuer.jwks())
    )
    token = issuer.token(subject("team-a", "watcher"))
    await sim.api.control_ok("POST", "/identity/outage", {"kind": "oidc", "count": 1})
    with pytest.raises(IdentityExchangeFailed) as caught:
        await _oidc(sim.server.url, token)
    assert caught.value.status_code == 503
    await _oidc(sim.server.url, token)  # the outage was one answer long
    assert sim.server.state.identity.exchanges == {"oidc": 1}
    refused = await sim.api.control("POST", "/identity/outage", {"kind": "nonsense"})
    assert refused.status_code == 400


def test_simulate_loads_an_identity_config_file(tmp_path: Path) -> None:
    path = tmp_path / "identity.yaml"
    path.write_text(
        yaml.safe_dump(identity_config(project_id=DEMO_PROJECT_ID, jwks=TestIssuer().jwks()))
    )
    process = simulate("--identity-config", str(path))
    try:
        line = first_line(process, STARTUP_TIMEOUT)
        url = line.split(" on ", 1)[1].strip()
        shown = httpx.get(url + "/_sim/identity", timeout=10).json()
        assert shown["config"]["metadataAgency"].endswith(":agency:node")
    finally:
        process.kill()
        process.wait(10)


def test_simulate_refuses_a_broken_identity_config(tmp_path: Path) -> None:
    path = tmp_path / "identity.yaml"
    path.write_text("agencies: [{projectIds: []}]\n")
    process = simulate("--identity-config", str(path))
    _, err = process.communicate(timeout=STARTUP_TIMEOUT)
    assert process.returncode == 2
    assert "invalid identity configuration" in err
