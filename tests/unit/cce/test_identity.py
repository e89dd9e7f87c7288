"""The credential providers' requests and failures, against a scripted server;
the cache's renewal rule; reading credentials in every shape the cloud uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cce_upgrade_watch.cce.errors import CredentialsMissing, EndpointError
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
    agency_urn,
    identity_endpoint,
    parse_key_credentials,
    refresh_margin,
    token_file,
)
from cce_upgrade_watch.cce.identity.credentials import CredentialsUnreadable
from cce_upgrade_watch.cce.identity.env import (
    node_local_endpoint,
    provider_from_env,
    service_endpoint,
)
from cce_upgrade_watch.cce.senders import HttpxSender
from cce_upgrade_watch.cce.signing import parse_authorization
from tests.unit.cce.scripted_server import Reply, ScriptedServer

ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW5ldmVyLXByaW50ZWQ"
TEMP_AK = "HSTTEMPORARYKEY00001"
TEMP_SK = "temporary-secret-never-printed-0123456789"
TEMP_TOKEN = "temporary-security-token-never-printed-" + "x" * 200
EXPIRY = "2026-11-29T10:00:00.000Z"
STS_ANSWER = {
    "credentials": {
        "access_key_id": TEMP_AK,
        "secret_access_key": TEMP_SK,
        "security_token": TEMP_TOKEN,
        "expiration": EXPIRY,
    },
    "assumed_agency": {"urn": "iam::x:agency:y", "id": "1"},
}
IAM_ANSWER = {
    "credential": {
        "access": TEMP_AK,
        "secret": TEMP_SK,
        "securitytoken": TEMP_TOKEN,
        "expires_at": EXPIRY,
    }
}


async def _token() -> str:
    return ID_TOKEN


@pytest.fixture
async def http() -> AsyncIterator[IdentityHttp]:
    sender = HttpxSender(httpx.AsyncHTTPTransport(), httpx.Timeout(5.0), 2)
    identity = IdentityHttp(sender)
    yield identity
    await identity.aclose()


def _oidc(http: IdentityHttp, server: ScriptedServer, **options: object) -> OidcStsProvider:
    return OidcStsProvider(
        http=http,
        sts_endpoint=server.url + "/",
        provider_urn="iam::acct:identity-provider:kube",
        agency_urn="iam::acct:agency:reader",
        token=_token,
        subject="team-a/watcher",
        **options,  # type: ignore[arg-type]
    )


async def test_oidc_request_is_the_sdks(http: IdentityHttp, server: ScriptedServer) -> None:
    server.script(Reply(200, STS_ANSWER))
    credentials = await _oidc(http, server).fetch()
    assert (credentials.access_key, credentials.secret_key) == (TEMP_AK, TEMP_SK)
    assert credentials.security_token == TEMP_TOKEN
    assert credentials.expires_at == datetime(2026, 11, 29, 10, tzinfo=UTC)
    [seen] = server.seen
    assert (seen.method, seen.path) == ("POST", "/v5/agencies/assume-with-oidc")
    assert seen.headers["content-type"] == "application/json;charset=UTF-8"
    assert "authorization" not in seen.headers  # the token is the proof, nothing is signed
    assert json.loads(seen.body) == {
        "provider_urn": "iam::acct:identity-provider:kube",
        "agency_urn": "iam::acct:agency:reader",
        "agency_session_name": "cce-upgrade-watch",
        "id_token": ID_TOKEN,
        "duration_seconds": 3600,
    }


@pytest.mark.parametrize(
    "reply",
    [
        Reply(403, {"error_code": "STS.0403", "error_msg": f"token {ID_TOKEN} is not trusted"}),
        Reply(400, {"error": {"code": "IAM.0400", "message": f"bad {ID_TOKEN}"}}),
        Reply(500, f"gateway error for {ID_TOKEN}"),
        Reply(200, {"credentials": {"access_key_id": TEMP_AK}}),
        Reply(200, "not json"),
        Reply(drop=True),
    ],
)
async def test_oidc_failures_are_typed_and_never_quote_the_token(
    http: IdentityHttp, server: ScriptedServer, reply: Reply
) -> None:
    server.script(reply)
    with pytest.raises(IdentityExchangeFailed) as caught:
        await _oidc(http, server).fetch()
    assert caught.value.reason == "IdentityExchangeFailed"
    assert ID_TOKEN not in str(caught.value)
    assert TEMP_AK not in str(caught.value)


async def test_oidc_error_quotes_code_and_message(
    http: IdentityHttp, server: ScriptedServer
) -> None:
    server.script(
        Reply(
            403,
            {"error_code": "STS.0403", "error_msg": "agency does not trust"},
            headers={"X-Request-Id": "req-1"},
        )
    )
    with pytest.raises(IdentityExchangeFailed) as caught:
        await _oidc(http, server).fetch()
    text = str(caught.value)
    assert "assume agency with OIDC" in text
    assert "HTTP 403 STS.0403" in text
    assert "agency does not trust" in text
    assert "req-1" in text


def test_duration_outside_what_sts_accepts_is_refused_at_once(http: IdentityHttp) -> None:
    async def token() -> str:
        return ID_TOKEN

    with pytest.raises(ValueError, match="duration_seconds"):
        OidcStsProvider(
            http=http,
            sts_endpoint="https://sts.example",
            provider_urn="p",
            agency_urn="a",
            token=token,
            subject="s",
            duration_seconds=60,
        )


async def test_two_step_iam_path(http: IdentityHttp, server: ScriptedServer) -> None:
    server.script(
        Reply(201, {"token": {}}, headers={"X-Subject-Token": "unscoped-never-printed"}),
        Reply(201, IAM_ANSWER),
    )
    provider = FederatedIamProvider(
        http=http, iam_endpoint=server.url, idp_id="kube", token=_token, subject="team-a/w"
    )
    credentials = await provider.fetch()
    assert credentials.access_key == TEMP_AK
    first, second = server.seen
    assert first.path == "/v3.0/OS-AUTH/id-token/tokens"
    assert first.headers["x-idp-id"] == "kube"
    assert json.loads(first.body) == {"auth": {"id_token": {"id": ID_TOKEN}}}
    assert second.path == "/v3.0/OS-CREDENTIAL/securitytokens"
    assert json.loads(second.body) == {
        "auth": {
            "identity": {
                "methods": ["token"],
                "token": {"id": "unscoped-never-printed", "duration_seconds": 21600},
            }
        }
    }


async def test_two_step_iam_path_without_subject_token(
    http: IdentityHttp, server: ScriptedServer
) -> None:
    server.script(Reply(201, {"token": {}}))
    provider = FederatedIamProvider(
        http=http, iam_endpoint=server.url, idp_id="kube", token=_token, subject="s"
    )
    with pytest.raises(IdentityExchangeFailed, match="X-Subject-Token"):
        await provider.fetch()


async def test_metadata_session_token_then_security_key(
    http: IdentityHttp, server: ScriptedServer
) -> None:
    server.script(Reply(200, "session-token-1"), Reply(200, IAM_ANSWER))
    provider = MetadataProvider(http, server.url)
    assert (await provider.fetch()).access_key == TEMP_AK
    put, get = server.seen
    assert (put.method, put.path) == ("PUT", "/meta-data/latest/api/token")
    assert put.headers["x-metadata-token-ttl-seconds"] == "21600"
    assert (get.method, get.path) == ("GET", "/openstack/latest/securitykey")
    assert get.headers["x-metadata-token"] == "session-token-1"
    # The session token is reused; a 401 buys one new one and one more try.
    server.script(Reply(401, "expired"), Reply(200, "session-token-2"), Reply(200, IAM_ANSWER))
    assert (await provider.fetch()).access_key == TEMP_AK
    assert [s.method for s in server.seen[2:]] == ["GET", "PUT", "GET"]
    assert server.seen[-1].headers["x-metadata-token"] == "session-token-2"


async def test_metadata_without_session_tokens(http: IdentityHttp, server: ScriptedServer) -> None:
    server.script(Reply(404, "no such path"), Reply(200, IAM_ANSWER))
    assert (await MetadataProvider(http, server.url).fetch()).access_key == TEMP_AK
    assert "x-metadata-token" not in server.seen[1].headers


async def test_pod_identity_request(
    http: IdentityHttp, server: ScriptedServer, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(ID_TOKEN + "\n")
    answer = {
        "credentials": {
            "accessKeyId": TEMP_AK,
            "secretAccessKey": TEMP_SK,
            "securityToken": TEMP_TOKEN,
            "expiration": EXPIRY,
        }
    }
    server.script(Reply(200, answer))
    provider = PodIdentityProvider(http=http, uri=server.url + "/creds", token=token_file(path))
    assert (await provider.fetch()).security_token == TEMP_TOKEN
    [seen] = server.seen
    assert (seen.method, seen.path) == ("POST", "/creds")
    assert seen.headers["authorization"] == ID_TOKEN
    assert json.loads(seen.body) == {}


async def test_unreadable_token_file_is_an_exchange_failure(tmp_path: Path) -> None:
    with pytest.raises(IdentityExchangeFailed, match="cannot be read"):
        await token_file(tmp_path / "missing")()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(IdentityExchangeFailed, match="is empty"):
        await token_file(tmp_path / "empty")()


async def test_assume_agency_is_signed_with_the_source(
    http: IdentityHttp, server: ScriptedServer
) -> None:
    source = KeyCredentials("HSTSOURCEKEY00000001", "source-secret-never-printed", "src-token")
    server.script(Reply(200, STS_ANSWER))

    async def get_source() -> KeyCredentials:
        return source

    provider = AssumeAgencyProvider(
        http=http,
        sts_endpoint=server.url,
        agency_urn=agency_urn(account_id="f" * 32, agency_name="cce-reader"),
        source=get_source,
        source_identity="oidc:x",
    )
    assert (await provider.fetch()).access_key == TEMP_AK
    [seen] = server.seen
    assert seen.path == "/v5/agencies/assume"
    parsed = parse_authorization(seen.headers["authorization"])
    assert parsed is not None
    assert parsed[0] == source.access_key
    assert seen.headers["x-security-token"] == "src-token"
    assert "x-project-id" not in seen.headers  # a global service
    assert json.loads(seen.body)["agency_urn"] == "iam::" + "f" * 32 + ":agency:cce-reader"


def test_agency_urn_is_checked() -> None:
    with pytest.raises(ValueError, match="account"):
        agency_urn(account_id="not-an-id", agency_name="x")
    with pytest.raises(ValueError, match="agency name"):
        agency_urn(account_id="0" * 32, agency_name="a/b")


def test_identity_endpoints_follow_the_region_table() -> None:
    assert (
        identity_endpoint("sts", "ap-southeast-1") == "https://sts.ap-southeast-1.myhuaweicloud.com"
    )
    assert identity_endpoint("iam", "eu-west-101") == "https://iam.eu-west-101.myhuaweicloud.eu"


@pytest.mark.parametrize(
    "body",
    [
        STS_ANSWER,
        IAM_ANSWER,
        {
            "credentials": {
                "accessKeyId": TEMP_AK,
                "secretAccessKey": TEMP_SK,
                "securityToken": TEMP_TOKEN,
                "expiration": "2026-11-29T18:00:00+08:00",
            }
        },
    ],
)
def test_every_answer_shape_is_read(body: dict[str, object]) -> None:
    credentials = parse_key_credentials(json.dumps(body).encode())
    assert credentials.expires_at == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert TEMP_SK not in repr(credentials)
    assert TEMP_TOKEN not in repr(credentials)


@pytest.mark.parametrize(
    "body",
    [
        {"credential": {"access": TEMP_AK, "secret": TEMP_SK, "securitytoken": TEMP_TOKEN}},
        {"credential": {**IAM_ANSWER["credential"], "expires_at": "tomorrow"}},
        {"credential": {**IAM_ANSWER["credential"], "secret": "x" * 10_000}},
        {"credential": {**IAM_ANSWER["credential"], "access": "bad\nkey"}},
        [],
    ],
)
def test_unusable_answers_are_refused_without_echoing(body: object) -> None:
    with pytest.raises(CredentialsUnreadable) as caught:
        parse_key_credentials(json.dumps(body))
    assert TEMP_SK not in str(caught.value)


@pytest.mark.parametrize(
    ("lifetime", "margin"), [(3600, 300), (900, 90), (20, 2), (43_200, 300), (0, 0)]
)
def test_refresh_margin_is_five_minutes_or_ten_percent(lifetime: float, margin: float) -> None:
    assert refresh_margin(lifetime) == margin


class _Counting:
    identity = "test:identity"

    def __init__(self, lifetime: float, now: list[datetime]) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.now = now
        self.release = asyncio.Event()

    async def fetch(self) -> KeyCredentials:
        self.calls += 1
        await self.release.wait()
        expiry = self.now[0] + timedelta(seconds=self.lifetime)
        return KeyCredentials(f"HSTKEY{self.calls:014d}", "sk", "token", expiry)


async def test_cache_renews_at_the_margin_and_shares_one_exchange() -> None:
    now = [datetime(2026, 11, 29, 8, tzinfo=UTC)]
    cache = CredentialCache(clock=lambda: now[0])
    provider = _Counting(3600, now)
    waiters = [asyncio.create_task(cache.get(provider)) for _ in range(5)]
    await asyncio.sleep(0)
    provider.release.set()
    results = await asyncio.gather(*waiters)
    assert provider.calls == 1
    assert {r.access_key for r in results} == {"HSTKEY00000000000001"}
    now[0] += timedelta(seconds=3600 - 300 - 1)
    assert (await cache.get(provider)).access_key.endswith("1")
    now[0] += timedelta(seconds=1)
    assert (await cache.get(provider)).access_key.endswith("2")
    cache.forget(provider.identity)
    assert (await cache.get(provider)).access_key.endswith("3")


async def test_cache_refuses_credentials_that_arrive_expired() -> None:
    now = [datetime(2026, 11, 29, 8, tzinfo=UTC)]
    cache = CredentialCache(clock=lambda: now[0])
    provider = _Counting(-1, now)
    provider.release.set()
    with pytest.raises(IdentityExchangeFailed, match="clock"):
        await cache.get(provider)
    assert len(cache) == 0


def test_node_local_addresses_take_plain_http_only_on_the_node() -> None:
    assert node_local_endpoint("http://169.254.169.254/", "metadata") == "http://169.254.169.254"
    assert node_local_endpoint("http://127.0.0.1:8080/x", "metadata") == "http://127.0.0.1:8080/x"
    assert node_local_endpoint("https://agent.example/creds", "pod identity")
    for bad in ("http://192.0.2.1", "ftp://127.0.0.1", "http://user:pw@127.0.0.1", "not a url"):
        with pytest.raises(EndpointError):
            node_local_endpoint(bad, "metadata")


def test_sts_endpoint_from_the_sdk_variable_or_the_region() -> None:
    assert service_endpoint({}, "sts", "cn-north-4") == "https://sts.cn-north-4.myhuaweicloud.com"
    env = {"HUAWEICLOUD_SDK_STS_ENDPOINT": "http://127.0.0.1:9/"}
    assert service_endpoint(env, "sts", "cn-north-4") == "http://127.0.0.1:9"
    with pytest.raises(EndpointError, match="HUAWEICLOUD_SDK_STS_ENDPOINT"):
        service_endpoint({"HUAWEICLOUD_SDK_STS_ENDPOINT": "http://sts.example"}, "sts", None)
    with pytest.raises(EndpointError, match="--region"):
        service_endpoint({}, "iam", None)


def test_env_paths_in_the_sdks_order(http: IdentityHttp) -> None:
    oidc = {
        "HUAWEICLOUD_OIDC_PROVIDER_URN": "p",
        "HUAWEICLOUD_OIDC_AGENCY_URN": "a",
        "HUAWEICLOUD_OIDC_ID_TOKEN": ID_TOKEN,
    }
    iam = {"HUAWEICLOUD_SDK_IDP_ID": "kube", "HUAWEICLOUD_SDK_ID_TOKEN_FILE": "/t"}
    pod = {
        "HC_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/c",
        "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/t",
    }
    region = "ap-southeast-1"
    assert isinstance(
        provider_from_env({**pod, **iam, **oidc}, http=http, region=region), OidcStsProvider
    )
    assert isinstance(
        provider_from_env({**pod, **iam}, http=http, region=region), FederatedIamProvider
    )
    assert isinstance(provider_from_env(pod, http=http, region=region), PodIdentityProvider)
    assert provider_from_env({}, http=http, region=region) is None
    chosen = provider_from_env(
        oidc, http=http, region=region, metadata_endpoint="http://127.0.0.1:1"
    )
    assert isinstance(chosen, MetadataProvider)
    with pytest.raises(CredentialsMissing, match="HUAWEICLOUD_OIDC_DURATION_SECONDS"):
        provider_from_env(
            {**oidc, "HUAWEICLOUD_OIDC_DURATION_SECONDS": "60"}, http=http, region=region
        )
