"""Regions to hosts, and which endpoint overrides are allowed."""

from __future__ import annotations

import pytest

from cce_upgrade_watch.cce.endpoints import endpoint_for_region, resolve_endpoint, validate_endpoint
from cce_upgrade_watch.cce.errors import EndpointError


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("ap-southeast-1", "https://cce.ap-southeast-1.myhuaweicloud.com"),
        ("cn-north-4", "https://cce.cn-north-4.myhuaweicloud.com"),
        ("my-kualalumpur-1", "https://cce.my-kualalumpur-1.myhuaweicloud.com"),
        ("ae-ad-1", "https://cce.ae-ad-1.myhuaweicloud.com"),
        ("eu-west-101", "https://cce.eu-west-101.myhuaweicloud.eu"),
    ],
)
def test_region_maps_to_its_host(region: str, endpoint: str) -> None:
    assert endpoint_for_region(region) == endpoint


@pytest.mark.parametrize(
    "region",
    [
        "",
        "AP-SOUTHEAST-1",
        "ap_southeast_1",
        "ap-southeast",
        "evil.com/x-1",
        "ap-southeast-1.",
        "a-b-1",
    ],
)
def test_malformed_regions_are_refused(region: str) -> None:
    with pytest.raises(EndpointError, match="region"):
        endpoint_for_region(region)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://cce.example.com", "https://cce.example.com"),
        ("https://cce.example.com/", "https://cce.example.com"),
        ("https://gw.example.com:8443/cce/", "https://gw.example.com:8443/cce"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.9.8.7:1", "http://127.9.8.7:1"),
        ("http://localhost:9000/", "http://localhost:9000"),
        ("http://LOCALHOST:9000", "http://localhost:9000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_allowed_endpoints(given: str, expected: str) -> None:
    assert validate_endpoint(given) == expected


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("http://cce.example.com", "plain http://"),
        ("http://10.0.0.1:8080", "plain http://"),
        ("http://128.0.0.1", "plain http://"),
        ("http://localhost.evil.com", "plain http://"),
        ("http://[::2]", "plain http://"),
        ("ftp://cce.example.com", "https://"),
        ("cce.example.com", "https://"),
        ("https://", "https://"),
        ("https://user:hunter2@cce.example.com", "user name or password"),
        ("https://cce.example.com/?a=1", "query or fragment"),
        ("https://cce.example.com/#x", "query or fragment"),
    ],
)
def test_refused_endpoints_say_why(given: str, complaint: str) -> None:
    with pytest.raises(EndpointError, match=complaint) as caught:
        validate_endpoint(given)
    assert "hunter2" not in str(caught.value)


def test_endpoint_override_wins_over_region() -> None:
    assert (
        resolve_endpoint(region="cn-north-4", endpoint="http://127.0.0.1:1") == "http://127.0.0.1:1"
    )
    assert resolve_endpoint(region="cn-north-4") == "https://cce.cn-north-4.myhuaweicloud.com"
    with pytest.raises(EndpointError, match="neither"):
        resolve_endpoint()
