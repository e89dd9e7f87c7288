"""Reading the Secret a watch names: types that hold other credentials are refused,
and an API server that cannot answer becomes a retryable poll failure, never an
exception that ends the poll loop."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import kubernetes
import pytest
import urllib3

from cce_upgrade_watch.credentials import (
    CredentialsCache,
    CredentialsNotFound,
    SecretUnreadable,
    check_secret_type,
)
from cce_upgrade_watch.kubeapi import KubeApi
from tests.unit.operator.test_pollloop import RUNNING, FakeCce, FakeWriter, body, make_loop


class StubCore:
    """Stands in for CoreV1Api.read_namespaced_secret: returns or raises `answer`."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        if isinstance(answer := self.answer, BaseException):
            raise answer
        return answer


def kube_with(answer: Any) -> KubeApi:
    api = KubeApi(kubernetes.client.Configuration())
    api._core = StubCore(answer)  # type: ignore[assignment]
    return api


def secret(secret_type: str | None, **values: str) -> Any:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return kubernetes.client.V1Secret(type=secret_type, data=data)


@pytest.mark.parametrize("secret_type", ["Opaque", "cce.upgradewatch.io/credentials", None, ""])
async def test_credential_secret_types_are_read(secret_type: str | None) -> None:
    api = kube_with(secret(secret_type, token="T"))
    try:
        assert await api.read_secret_data("ns", "s") == {"token": "VA=="}
    finally:
        api.close()


@pytest.mark.parametrize(
    "secret_type",
    [
        "kubernetes.io/service-account-token",
        "kubernetes.io/tls",
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/basic-auth",
        "bootstrap.kubernetes.io/token",
        "example.com/anything",
    ],
)
async def test_other_secret_types_are_refused_naming_the_type(secret_type: str) -> None:
    api = kube_with(secret(secret_type, token="SA-TOKEN-VALUE"))
    try:
        with pytest.raises(CredentialsNotFound) as caught:
            await api.read_secret_data("ns", "s")
    finally:
        api.close()
    message = str(caught.value)
    assert f"type {secret_type!r}" in message
    assert "Secret 's' in namespace 'ns'" in message
    assert "SA-TOKEN-VALUE" not in message


def test_a_long_type_is_cut_in_the_message() -> None:
    with pytest.raises(CredentialsNotFound) as caught:
        check_secret_type("ns", "s", "x/" + "y" * 5000)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (kubernetes.client.ApiException(status=500, reason="Internal Server Error"), "HTTP 500"),
        (kubernetes.client.ApiException(status=503, reason="Service Unavailable"), "HTTP 503"),
        (kubernetes.client.ApiException(status=429, reason="Too Many Requests"), "HTTP 429"),
        (urllib3.exceptions.MaxRetryError(None, "/x", reason="refused"), "MaxRetryError"),  # type: ignore[arg-type]
        (urllib3.exceptions.ReadTimeoutError(None, "/x", "timed out"), "ReadTimeoutError"),  # type: ignore[arg-type]
        (ConnectionRefusedError(111, "refused"), "ConnectionRefusedError"),
    ],
)
async def test_an_api_server_that_cannot_answer_is_secret_unreadable(
    error: BaseException, shown: str
) -> None:
    api = kube_with(error)
    try:
        with pytest.raises(SecretUnreadable) as caught:
            await api.read_secret_data("ns", "s")
    finally:
        api.close()
    assert "Secret 's' in namespace 'ns'" in str(caught.value)
    assert shown in str(caught.value)
    assert caught.value.reason == "ApiUnavailable"


class FlakySecrets:
    def __init__(self) -> None:
        self.fail = True

    async def read(self, namespace: str, name: str) -> Mapping[str, str] | None:
        if self.fail:
            raise SecretUnreadable(f"could not read Secret {name!r} in namespace {namespace!r}")
        return {"token": base64.b64encode(b"T").decode()}


async def test_a_secret_read_failure_is_api_unavailable_retried_at_the_active_interval() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FlakySecrets()
    cce.answers = [RUNNING]
    loop, _ = make_loop(body(pollInterval="10m", activePollInterval="7s"), cce, writer, secrets)  # type: ignore[arg-type]
    interval = await loop.poll_once()  # raised out of the loop before the fix
    assert interval == 7
    (synced,) = [c for c in writer.patches[-1]["conditions"] if c["type"] == "Synced"]
    assert (synced["status"], synced["reason"]) == ("False", "ApiUnavailable")
    assert "Secret 'creds'" in synced["message"]
    assert cce.calls == []  # no credentials, no cloud call
    secrets.fail = False
    await loop.poll_once()
    (synced,) = [c for c in writer.patches[-1]["conditions"] if c["type"] == "Synced"]
    assert synced["status"] == "True"


async def test_the_cache_does_not_keep_a_failed_read() -> None:
    secrets = FlakySecrets()
    cache = CredentialsCache(secrets.read)
    with pytest.raises(SecretUnreadable):
        await cache.get("ns", "s")
    secrets.fail = False
    assert (await cache.get("ns", "s")).token == "T"
