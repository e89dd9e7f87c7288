"""Where the CCE API of a region lives, and which endpoint overrides are safe.

A region maps to `https://cce.{region}.myhuaweicloud.com` (`eu-west-101` lives
under `.myhuaweicloud.eu`). Clouds built on the same stack use other hosts, so an
explicit endpoint may replace the region; it must be `https://`, because the
request carries credentials (a token, or a signature plus a security token).
Plain `http://` is allowed only to a loopback host, which is where the simulator
runs in tests and the demo.
"""

from __future__ import annotations

import ipaddress
import re

import httpx

from cce_upgrade_watch.cce.errors import EndpointError

#: Regions whose CCE host is not under `myhuaweicloud.com`.
_HOST_EXCEPTIONS: dict[str, str] = {"eu-west-101": "cce.eu-west-101.myhuaweicloud.eu"}

# Huawei region ids: a two-letter area, one or more words, a number
# (cn-north-4, ap-southeast-1, my-kualalumpur-1, ae-ad-1, eu-west-101).
# Unknown but well-formed regions are accepted: new regions appear before code learns them.
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,4}$")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def endpoint_for_region(region: str) -> str:
    """The CCE endpoint of `region`, e.g. `https://cce.ap-southeast-1.myhuaweicloud.com`."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise EndpointError(
            f"{region!r} is not a Huawei Cloud region id (expected something like "
            "'ap-southeast-1' or 'cn-north-4')"
        )
    host = _HOST_EXCEPTIONS.get(region, f"cce.{region}.myhuaweicloud.com")
    return f"https://{host}"


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (the only hosts plain HTTP may reach)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_endpoint(endpoint: str) -> str:
    """Check an endpoint override and return it without a trailing slash.

    A path prefix is kept (for gateways that mount the API under one); user
    info, a query or a fragment are refused because none has a meaning here
    and user info would put a credential in every log line that prints the URL.
    """
    try:
        url = httpx.URL(endpoint.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise EndpointError(f"the endpoint is not a valid URL: {exc}") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise EndpointError(
            f"the endpoint must be an absolute https:// URL such as "
            f"'https://cce.ap-southeast-1.myhuaweicloud.com', not {_safe(url)!r}"
        )
    if url.userinfo:
        raise EndpointError("the endpoint must not contain a user name or password")
    if url.query or url.fragment:
        raise EndpointError(f"the endpoint must not have a query or fragment: {_safe(url)!r}")
    if url.scheme == "http" and not is_loopback_host(url.host):
        raise EndpointError(
            f"the endpoint {_safe(url)!r} uses plain http://, which would send credentials "
            "unencrypted; use https://, or http:// only to a loopback host "
            "(127.0.0.0/8, ::1, localhost)"
        )
    return str(url).rstrip("/")


def resolve_endpoint(*, region: str | None = None, endpoint: str | None = None) -> str:
    """The endpoint to call: the override when given, else the region's host."""
    if endpoint:
        return validate_endpoint(endpoint)
    if region:
        return endpoint_for_region(region)
    raise EndpointError("neither a region nor an endpoint was given")


def _safe(url: httpx.URL) -> str:
    # Never echo user info, which may hold a password.
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)
