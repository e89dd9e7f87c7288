"""Which hosts the operator may send credentials to (`EndpointPolicy`), and that the
client refuses any other before a byte is sent."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cce_upgrade_watch.cce.auth import TokenAuth
from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.endpoints import (
    HUAWEI_CLOUD_API_HOSTS,
    EndpointPolicy,
    endpoint_for_region,
    parse_host_pattern,
)
from cce_upgrade_watch.cce.errors import EndpointError, EndpointNotAllowed

PROJECT = "0123456789abcdef0123456789abcdef"
CLUSTER = "b4b9e60f-8aa2-11ee-af09-0255ac10004f"


def sdk_region_hosts() -> set[str]:
    """Every CCE host the official SDK's region tables know."""
    from huaweicloudsdkcce.v3.region.cce_region import CceRegion as V3
    from huaweicloudsdkcce.v5.region.cce_region import CceRegion as V5

    hosts = set()
    for table in (V3, V5):
        for region in table.static_fields.values():
            for endpoint in region.endpoints:
                hosts.add(httpx.URL(endpoint).host)
    return hosts


def test_every_host_of_the_official_sdk_is_allowed_by_default() -> None:
    hosts = sdk_region_hosts()
    assert len(hosts) > 30
    policy = EndpointPolicy()
    for host in hosts:
        policy.check(f"https://{host}")


@pytest.mark.parametrize("region", ["ap-southeast-1", "cn-north-4", "eu-west-101", "xx-new-7"])
def test_every_region_host_is_allowed_by_default(region: str) -> None:
    EndpointPolicy().check(endpoint_for_region(region))


@pytest.mark.parametrize(
    ("endpoint", "complaint"),
    [
        ("https://attacker.example.com", "not allowed"),
        ("https://myhuaweicloud.com", "not allowed"),  # the apex is no API host
        ("https://evilmyhuaweicloud.com", "not allowed"),
        ("https://cce.ap-southeast-1.myhuaweicloud.com.attacker.example", "not allowed"),
        ("https://cce.ap-southeast-1.myhuaweicloud.cn", "not allowed"),
        ("https://kubernetes.default.svc", "not allowed"),
        ("https://10.0.0.1", "IP address"),
        ("https://169.254.169.254", "IP address"),
        ("https://[fd00::1]:8443", "IP address"),
        ("https://2130706433", "IP address"),  # 127.0.0.1 as one number
        ("https://0x7f.1", "IP address"),
        ("http://127.0.0.1:8080", "--allow-insecure-loopback"),
        ("https://localhost", "--allow-insecure-loopback"),
        ("http://[::1]:1", "--allow-insecure-loopback"),
    ],
)
def test_other_hosts_are_refused_by_default(endpoint: str, complaint: str) -> None:
    with pytest.raises(EndpointNotAllowed, match=complaint) as caught:
        EndpointPolicy().check(endpoint)
    assert caught.value.reason == "EndpointNotAllowed"
    if complaint == "not allowed":
        assert "--allowed-endpoint-hosts" in str(caught.value)


def test_host_comparison_ignores_case_and_a_trailing_dot() -> None:
    EndpointPolicy().check("https://CCE.AP-SOUTHEAST-1.MyHuaweiCloud.com.:443/prefix")


def test_the_host_is_parsed_not_matched_as_text() -> None:
    # Text that contains an allowed domain but sends the request elsewhere.
    for endpoint in (
        "https://attacker.example/cce.ap-southeast-1.myhuaweicloud.com",
        "https://attacker.example:443/.myhuaweicloud.com",
        "https://attacker.example#.myhuaweicloud.com",
    ):
        with pytest.raises(EndpointNotAllowed):
            EndpointPolicy().check(endpoint)


def test_an_internationalised_host_is_compared_in_its_ascii_form() -> None:
    # A look-alike (a Cyrillic small ie for the "e") is another host, refused.
    with pytest.raises(EndpointNotAllowed):
        EndpointPolicy().check("https://cce.ap-southeast-1.myhuaw\u0435icloud.com")


def test_the_admin_widens_the_list() -> None:
    policy = EndpointPolicy.from_flags(["*.gw.example.com", "cce-proxy.corp.example"])
    assert policy.allowed_hosts[: len(HUAWEI_CLOUD_API_HOSTS)] == HUAWEI_CLOUD_API_HOSTS
    policy.check("https://cce.ap-southeast-1.myhuaweicloud.com")
    policy.check("https://eu.gw.example.com:8443/cce")
    policy.check("https://cce-proxy.corp.example")
    for refused in ("https://gw.example.com", "https://x.cce-proxy.corp.example"):
        with pytest.raises(EndpointNotAllowed):
            policy.check(refused)


def test_insecure_loopback_allows_loopback_only() -> None:
    policy = EndpointPolicy.from_flags(allow_insecure_loopback=True)
    for endpoint in (
        "http://127.0.0.1:8080",
        "http://127.3.2.1:1",
        "http://localhost:9",
        "http://[::1]:1",
    ):
        policy.check(endpoint)
    with pytest.raises(EndpointNotAllowed):
        policy.check("https://10.1.2.3")


@pytest.mark.parametrize(
    ("pattern", "complaint"),
    [
        ("*", "not a host name"),
        ("*.com", "too wide"),
        ("10.0.0.1", "IP address"),
        ("https://x.example.com", "not a host name"),
        ("x.example.com/path", "not a host name"),
        ("*.*.example.com", "not a host name"),
        ("", "not a host name"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_host_pattern(pattern)


def test_patterns_are_normalised() -> None:
    assert parse_host_pattern(" *.GW.Example.com. ") == "*.gw.example.com"


async def test_the_client_sends_nothing_to_a_refused_host() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"items": []})

    client = CceClient(transport=httpx.MockTransport(handler), endpoint_policy=EndpointPolicy())
    async with client:
        for endpoint in ("https://attacker.example.com", "http://127.0.0.1:1"):
            with pytest.raises(EndpointNotAllowed):
                await client.list_upgrade_workflows(
                    PROJECT, CLUSTER, auth=TokenAuth("T0KEN"), endpoint=endpoint
                )
        assert sent == []
        # An allowed host is called as before.
        await client.list_upgrade_workflows(
            PROJECT, CLUSTER, auth=TokenAuth("T0KEN"), region="ap-southeast-1"
        )
        assert [r.url.host for r in sent] == ["cce.ap-southeast-1.myhuaweicloud.com"]


def test_endpoint_not_allowed_is_an_endpoint_error() -> None:
    assert issubclass(EndpointNotAllowed, EndpointError)


_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(
    labels=st.lists(_labels, min_size=1, max_size=4),
    suffix=st.sampled_from(
        ["myhuaweicloud.com", "myhuaweicloud.eu", "myhuaweicloud.cn", "huaweicloud.com",
         "example.com", "myhuaweicloud.com.example.com", "amyhuaweicloud.com"]
    ),
    path=st.sampled_from(["", "/", "/cce", "/.myhuaweicloud.com"]),
)  # fmt: skip
def test_a_host_is_allowed_exactly_when_it_lies_under_an_api_domain(
    labels: list[str], suffix: str, path: str
) -> None:
    host = ".".join([*labels, suffix])
    under_api_domain = host.endswith((".myhuaweicloud.com", ".myhuaweicloud.eu"))
    try:
        EndpointPolicy().check(f"https://{host}{path}")
    except EndpointNotAllowed:
        allowed = False
    else:
        allowed = True
    assert allowed == under_api_domain, host
