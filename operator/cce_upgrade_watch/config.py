"""Operator-wide settings, from the `run` command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cce_upgrade_watch.cce.endpoints import EndpointPolicy
from cce_upgrade_watch.durations import format_duration


@dataclass(frozen=True)
class OperatorConfig:
    #: Used for objects whose spec leaves the interval out.
    default_poll_interval: timedelta = timedelta(minutes=5)
    default_active_poll_interval: timedelta = timedelta(seconds=30)
    #: After a restart, each loop waits a random time up to this before its first
    #: poll, so a thousand watches do not hit the cloud API in the same second.
    max_initial_delay: float = 10.0
    #: How long a Secret's credentials are reused before the Secret is read again.
    secret_cache_ttl: float = 300.0
    #: CCE requests in flight at once, across all watches.
    cce_max_in_flight: int = 32
    #: Polls in flight at once (`scheduler.py`): more than the CCE requests, so
    #: the CCE client always has polls of every namespace to share its slots
    #: between, while others write status or create Events.
    max_concurrent_polls: int = 128
    #: How often the watches are listed to stop the polls of objects deleted
    #: without an event reaching the operator (`resync.py`); 0: never.
    resync_interval: float = 3600.0
    cce_max_attempts: int = 3
    #: Seconds to wait for each CCE answer (connecting waits at most 5); also the
    #: overall deadline of one attempt, reading included.
    cce_timeout: float = 15.0
    #: The largest CCE answer read, on the wire and after decompression.
    cce_max_response_bytes: int = 1024 * 1024
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    #: The hosts credentials may be sent to (`--allowed-endpoint-hosts`,
    #: `--allow-insecure-loopback`): Huawei Cloud's API domains unless widened.
    endpoint_policy: EndpointPolicy = field(default_factory=EndpointPolicy)
    #: The operator's own identity for `spec.identity.ambient` (metadata,
    #: pod-identity, oidc), None: off; and the namespaces that may use it.
    ambient_credentials: str | None = None
    ambient_namespaces: frozenset[str] = frozenset()
    metadata_endpoint: str | None = None
    #: STS / IAM for every watch; None: the watch's region's.
    sts_endpoint: str | None = None
    iam_endpoint: str | None = None

    def with_defaults(self, spec: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """The spec with the operator's interval defaults where it sets none."""
        if not isinstance(spec, Mapping):
            return spec
        return {
            "pollInterval": format_duration(self.default_poll_interval),
            "activePollInterval": format_duration(self.default_active_poll_interval),
            **spec,
        }
