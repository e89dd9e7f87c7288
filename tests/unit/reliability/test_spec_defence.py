"""The operator's own defences behind the CRD: bad endpoints and unusable Secrets.

The API server rejects a plain-http endpoint off loopback (the CRD table in
tests/e2e/test_operator_behaviour.py); an object stored under an older CRD, or by
anything that skips validation, still reaches the operator. It must then refuse the
spec by name and send nothing. Secrets are fuzzed for the same promise: usable
credentials, or `CredentialsNotFound` naming keys and never a value.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.cce.endpoints import validate_endpoint
from cce_upgrade_watch.cce.errors import CceError, EndpointError
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import CloudCredentials, CredentialsCache, CredentialsNotFound
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.pollloop import PollLoop, Services
from cce_upgrade_watch.spec import SpecError, parse_watch_spec

PROJECT = "0123456789abcdef0123456789abcdef"
CLUSTER = "b4b9e60f-8aa2-11ee-af09-0255ac10004f"


class NoCloud:
    """A CCE client that must never be called."""

    calls = 0

    async def list_upgrade_workflows(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise AssertionError("a request was sent for an invalid spec")


class Writer:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {}

    async def patch_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        self.status.update(status_patch)
        return self.status


async def no_secret(namespace: str, name: str) -> Mapping[str, str]:
    raise AssertionError("the Secret was read for an invalid spec")


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://cce.example.com",
        "http://10.0.0.1:8080",
        "http://localhost.evil.com",
        "http://127.0.0.1.nip.io",
        "http://[::ffff:10.0.0.1]",
    ],
)
def test_plain_http_off_loopback_is_refused_without_a_request(endpoint: str) -> None:
    cloud, writer, events = NoCloud(), Writer(), list[Event]()
    body = {
        "metadata": {"namespace": "ns", "name": "w", "generation": 3},
        "spec": {
            "endpoint": endpoint,
            "projectId": PROJECT,
            "clusterId": CLUSTER,
            "credentialsSecretRef": {"name": "creds"},
        },
    }
    services = Services(
        config=OperatorConfig(),
        cce=cloud,  # type: ignore[arg-type]
        status_writer=writer,
        credentials=CredentialsCache(no_secret),
    )
    interval = asyncio.run(PollLoop(body, services, events.append).poll_once())
    assert cloud.calls == 0
    synced = next(c for c in writer.status["conditions"] if c["type"] == "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "InvalidSpec")
    assert "spec.endpoint" in synced["message"]
    assert "plain http://" in synced["message"]
    assert writer.status["observedGeneration"] == 3
    assert [(e.type, e.reason) for e in events] == [("Warning", "PollFailed")]
    assert interval == OperatorConfig().default_poll_interval.total_seconds()


_hosts = st.sampled_from(
    [
        "127.0.0.1",
        "127.8.9.10",
        "localhost",
        "LOCALHOST",
        "[::1]",
        "10.0.0.1",
        "128.0.0.1",
        "cce.example.com",
        "localhost.evil.com",
        "127.0.0.1.nip.io",
        "[::2]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",  # noqa: S104 (a URL host to refuse, nothing binds)
        "user:pw@127.0.0.1",
        "127.0.0.1@evil.com",
    ]
)
_endpoints = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "http:", ""]),
    _hosts,
    st.sampled_from(["", ":8080", ":0", ":99999", ":x"]),
    st.sampled_from(["", "/", "/cce", "/a b", "?q=1", "#f", "/../x"]),
)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_endpoints | st.text(max_size=40))
@example("http://127.0.0.1@evil.com")
@example("http://[::1]:8080/cce")
def test_an_accepted_endpoint_is_safe_to_call(endpoint: str) -> None:
    """Plain http:// only ever goes to this machine. The spec parser may let through
    what the client then refuses (a port that is not a number): that is an
    `InvalidEndpoint` condition and no request, never an unsafe call or a crash."""
    spec = {
        "endpoint": endpoint,
        "projectId": PROJECT,
        "clusterId": CLUSTER,
        "credentialsSecretRef": {"name": "creds"},
    }
    try:
        parse_watch_spec(spec)
    except SpecError as exc:
        problems = exc.problems
    else:
        problems = []
    if problems:
        assert any(p.startswith("spec.endpoint") for p in problems), problems
        return
    try:
        called = validate_endpoint(endpoint)
    except EndpointError:
        return  # reported as InvalidEndpoint; nothing is sent
    parts = urlsplit(called)
    assert parts.scheme in ("https", "http")
    assert not parts.username
    assert not parts.password
    if parts.scheme == "http":
        assert _is_loopback(parts.hostname or ""), called


# ---------------------------------------------------------------- Secrets

KEYS = ("accessKey", "secretKey", "securityToken", "token", "access_key", "secret", "AK")
# Values from an alphabet no message template uses, so a leak cannot hide in the text.
_values = st.one_of(
    st.text(alphabet="qzxjQZXJ0987", min_size=6, max_size=16).map(lambda v: "qz" + v),
    st.sampled_from(["", " ", "\n", "qzjx\x07qz", "qzé9qzé9", "qz qz\tqz"]),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), _values, max_size=5))
def test_any_secret_gives_credentials_or_names_the_keys(data: dict[str, str]) -> None:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    try:
        credentials = CloudCredentials.from_secret_data("creds", encoded)
    except CredentialsNotFound as exc:
        message = str(exc)
        credentials = None
    if credentials is None:
        assert "'creds'" in message
        assert any(f"'{key}'" in message for key in ("accessKey", "secretKey", "token", *KEYS))
        for value in data.values():
            if value.strip():
                assert value.strip() not in message, (value, message)
        return
    # Usable: the auth builds (or is refused with the package's error); no value shows.
    try:
        shown = repr(credentials) + repr(credentials.auth(PROJECT))
    except CceError as exc:
        shown = repr(credentials) + str(exc)
    for value in data.values():
        if len(value.strip()) > 4:  # an access key id shows its first 4 characters
            assert value.strip() not in shown, (value, shown)
