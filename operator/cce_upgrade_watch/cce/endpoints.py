"""Where the CCE API of a region lives, and which endpoint overrides are safe.

A region maps to `https://cce.{region}.myhuaweicloud.com` (`eu-west-101` lives
under `.myhuaweicloud.eu`). Clouds built on the same stack use other hosts, so an
explicit endpoint may replace the region; it must be `https://`, because the
request carries credentials (a token, or a signature plus a security token).
Plain `http://` is allowed only to a loopback host, which is where the simulator
runs in tests and the demo.

`EndpointPolicy` is the operator's second gate: the hosts credentials may be sent
to at all. By default only Huawei Cloud's own API domains, the ones the region
table produces (the official SDK's region tables, `huaweicloudsdkcce.v3.region`
and `.v5.region`, list only these two partitions); an admin widens it
(`run --allowed-endpoint-hosts`), and loopback needs `run --allow-insecure-loopback`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from cce_upgrade_watch.cce.errors import EndpointError, EndpointNotAllowed

#: Regions whose CCE host is not under `myhuaweicloud.com`.
_HOST_EXCEPTIONS: dict[str, str] = {"eu-west-101": "cce.eu-west-101.myhuaweicloud.eu"}

# Huawei region ids: a two-letter area, one or more words, a number
# (cn-north-4, ap-southeast-1, my-kualalumpur-1, ae-ad-1, eu-west-101).
# Unknown but well-formed regions are accepted: new regions appear before code learns them.
# The CRD's rule on spec.region is this same pattern.
REGION_PATTERN = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,4}$")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def endpoint_for_region(region: str) -> str:
    """The CCE endpoint of `region`, e.g. `https://cce.ap-southeast-1.myhuaweicloud.com`."""
    if not isinstance(region, str) or not REGION_PATTERN.fullmatch(region):
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


#: The API domains of Huawei Cloud's partitions: every host `endpoint_for_region`
#: can produce lies under one of them.
HUAWEI_CLOUD_API_HOSTS: tuple[str, ...] = ("*.myhuaweicloud.com", "*.myhuaweicloud.eu")

#: The flags an admin uses to allow more (named in every refusal).
ALLOWED_HOSTS_FLAG = "--allowed-endpoint-hosts"
INSECURE_LOOPBACK_FLAG = "--allow-insecure-loopback"

# One DNS label, lowercase ASCII (IDNA hosts are compared in their xn-- form).
_LABEL = re.compile(r"[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?")


def parse_host_pattern(pattern: str) -> str:
    """Check and normalise one allowed-host pattern: `host.example.com` (that host
    only) or `*.example.com` (any host under example.com, not example.com itself).

    Raises `ValueError` saying what is wrong. IP addresses and wildcards over a
    public suffix of one label (`*.com`) are refused: credentials go to named hosts.
    """
    text = pattern.strip().lower().rstrip(".")
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    labels = name.split(".")
    if not name or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{pattern!r} is not a host name or '*.<domain>' pattern "
            "(such as 'cce-gw.example.com' or '*.example.com')"
        )
    if _is_ip_literal(name):
        raise ValueError(f"{pattern!r} is an IP address; allow a host name instead")
    if wildcard and len(labels) < 2:
        raise ValueError(f"{pattern!r} is too wide: name at least a two-label domain")
    return f"*.{name}" if wildcard else name


@dataclass(frozen=True)
class EndpointPolicy:
    """Which hosts the operator sends credentials to.

    `allowed_hosts` holds normalised patterns (`parse_host_pattern`); the default
    is Huawei Cloud's API domains. Loopback hosts (the simulator) are allowed
    only with `allow_insecure_loopback`, over http or https. The check runs on
    the host httpx parses out of the URL (the very host the request goes to),
    never on the URL's text.
    """

    allowed_hosts: tuple[str, ...] = HUAWEI_CLOUD_API_HOSTS
    allow_insecure_loopback: bool = False

    @classmethod
    def from_flags(
        cls, extra_hosts: Iterable[str] = (), *, allow_insecure_loopback: bool = False
    ) -> EndpointPolicy:
        """Huawei Cloud's domains plus `extra_hosts` (patterns); raises `ValueError`."""
        extra = tuple(parse_host_pattern(p) for p in extra_hosts if p.strip())
        hosts = tuple(dict.fromkeys((*HUAWEI_CLOUD_API_HOSTS, *extra)))
        return cls(hosts, allow_insecure_loopback)

    def check(self, endpoint: str) -> None:
        """Raise `EndpointNotAllowed` unless credentials may go to `endpoint`'s host."""
        _check(self, endpoint)

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.allowed_hosts:
            # "*.example.com" matches below example.com (".example.com" as a suffix,
            # so never "evilexample.com"), not example.com itself.
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True
        return False

    def describe(self) -> str:
        return ", ".join(self.allowed_hosts)


@functools.lru_cache(maxsize=4096)
def _check(policy: EndpointPolicy, endpoint: str) -> None:
    # Cached: every poll of a watch asks the same; a refusal raises (not cached).
    try:
        raw_host = httpx.URL(endpoint).raw_host
        host = raw_host.decode("ascii").lower().rstrip(".")
    except (httpx.InvalidURL, UnicodeDecodeError, TypeError):
        raise EndpointNotAllowed(
            "the endpoint is not a valid URL; credentials are sent only to allowed hosts"
        ) from None
    if is_loopback_host(host):
        if policy.allow_insecure_loopback:
            return
        raise EndpointNotAllowed(
            f"the endpoint host {host!r} is a loopback address, which the operator calls "
            f"only when started with `run {INSECURE_LOOPBACK_FLAG}` (tests and the demo)"
        )
    if _is_ip_literal(host):
        raise EndpointNotAllowed(
            f"the endpoint host {host!r} is an IP address; credentials are sent only to "
            f"named hosts allowed by the operator ({policy.describe()}; its admin can add "
            f"host names with `run {ALLOWED_HOSTS_FLAG}`)"
        )
    if not policy.allows_host(host):
        raise EndpointNotAllowed(
            f"the endpoint host {host!r} is not allowed: the operator sends credentials "
            f"only to {policy.describe()}; its admin can allow more hosts with "
            f"`run {ALLOWED_HOSTS_FLAG}`"
        )


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return True
    # Forms a resolver may still read as IPv4 ("2130706433", "0x7f.1", "127.1"):
    # a name whose last label is all digits or hex is no DNS name of a cloud API.
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or bool(re.fullmatch(r"0x[0-9a-f]*", last))


def _safe(url: httpx.URL) -> str:
    # Never echo user info, which may hold a password.
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)
