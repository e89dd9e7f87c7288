"""Where STS and IAM live for a region: the same table as CCE's, another service.

Huawei Cloud names a regional endpoint `{service}.{region}.{domain}`; the CCE
table (`endpoints.endpoint_for_region`, which also knows the regions outside
`myhuaweicloud.com`) gives the domain, so STS and IAM follow it without a second
table to keep in step. The official SDK's own tables
(`huaweicloudsdkcore/auth/endpoint.py`) list `https://sts.{region}.myhuaweicloud.com`
and `https://iam.{region}.myhuaweicloud.com` for every region they know.

The result still has to pass the operator's endpoint allow-list before
credentials (or a ServiceAccount token) are sent to it: the providers take the
resolved URL, and the caller checks it.
"""

from __future__ import annotations

from typing import Literal

from cce_upgrade_watch.cce.endpoints import endpoint_for_region

IdentityService = Literal["sts", "iam"]

_CCE_PREFIX = "https://cce."


def identity_endpoint(service: IdentityService, region: str) -> str:
    """`https://sts.ap-southeast-1.myhuaweicloud.com` for ("sts", "ap-southeast-1").

    Raises `EndpointError` for a malformed region, as `endpoint_for_region` does.
    """
    cce = endpoint_for_region(region)
    assert cce.startswith(_CCE_PREFIX)  # the table's invariant
    return f"https://{service}." + cce[len(_CCE_PREFIX) :]
