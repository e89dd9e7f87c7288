"""Credentials from Secrets: decoding, clear errors without values, and the cache."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import pytest

from cce_upgrade_watch.cce.auth import AkSkAuth, TokenAuth
from cce_upgrade_watch.credentials import CloudCredentials, CredentialsCache, CredentialsNotFound

PROJECT = "0123456789abcdef0123456789abcdef"


def encoded(**values: str) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


def test_ak_sk_with_security_token() -> None:
    creds = CloudCredentials.from_secret_data(
        "s", encoded(accessKey="AK1", secretKey="SK1\n", securityToken="ST1")
    )
    assert (creds.access_key, creds.secret_key, creds.security_token) == ("AK1", "SK1", "ST1")
    assert isinstance(creds.auth(PROJECT), AkSkAuth)
    assert "SK1" not in repr(creds)
    assert "ST1" not in repr(creds)


def test_token_wins_over_keys() -> None:
    creds = CloudCredentials.from_secret_data("s", encoded(token="TOKEN1", accessKey="AK1"))
    assert isinstance(creds.auth(PROJECT), TokenAuth)
    assert "TOKEN1" not in repr(creds)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "'accessKey' is missing and 'secretKey' is missing"),
        ({"accessKey": "AKVALUE"}, "'secretKey' is missing"),
        ({"accessKey": "AKVALUE", "secretKey": ""}, "'secretKey' is empty"),
        (
            {"access_key": "AKVALUE", "secret_key": "SKVALUE"},
            "it has only 'access_key', 'secret_key'",
        ),
        ({"token": "  "}, "'accessKey' is missing"),
    ],
)
def test_missing_keys_are_named_and_values_never_shown(data: dict[str, str], expected: str) -> None:
    with pytest.raises(CredentialsNotFound) as caught:
        CloudCredentials.from_secret_data("creds", encoded(**data))
    message = str(caught.value)
    assert expected in message
    assert "Secret 'creds'" in message
    assert "AKVALUE" not in message
    assert "SKVALUE" not in message


def test_bad_base64_is_reported_without_the_value() -> None:
    with pytest.raises(CredentialsNotFound, match="'secretKey' is not valid base64") as caught:
        CloudCredentials.from_secret_data("s", {"accessKey": "QUs=", "secretKey": "%%%secret"})
    assert "%%%secret" not in str(caught.value)


class FakeSecrets:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Mapping[str, str]] = {}
        self.reads = 0

    async def read(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads += 1
        return self.data.get((namespace, name))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_reads_each_secret_once_per_ttl() -> None:
    secrets, clock = FakeSecrets(), FakeClock()
    secrets.data[("ns", "s")] = encoded(accessKey="AK1", secretKey="SK1")
    cache = CredentialsCache(secrets.read, ttl=300, clock=clock)
    for _ in range(50):  # fifty watches sharing one Secret, or fifty polls of one
        assert (await cache.get("ns", "s")).access_key == "AK1"
    assert secrets.reads == 1
    secrets.data[("ns", "s")] = encoded(accessKey="AK2", secretKey="SK2")
    clock.now += 301
    assert (await cache.get("ns", "s")).access_key == "AK2"
    assert secrets.reads == 2


async def test_invalidate_rereads_a_rotated_secret_at_once() -> None:
    secrets = FakeSecrets()
    secrets.data[("ns", "s")] = encoded(accessKey="AK1", secretKey="SK1")
    cache = CredentialsCache(secrets.read, ttl=300, clock=FakeClock())
    await cache.get("ns", "s")
    secrets.data[("ns", "s")] = encoded(accessKey="AK2", secretKey="SK2")
    cache.invalidate("ns", "s")  # what the poll loop does on a 401
    assert (await cache.get("ns", "s")).access_key == "AK2"


async def test_missing_secret_is_not_cached() -> None:
    secrets = FakeSecrets()
    cache = CredentialsCache(secrets.read, ttl=300, clock=FakeClock())
    with pytest.raises(CredentialsNotFound, match="not found in namespace 'ns'"):
        await cache.get("ns", "s")
    secrets.data[("ns", "s")] = encoded(token="T")
    assert (await cache.get("ns", "s")).token == "T"
    assert secrets.reads == 2
