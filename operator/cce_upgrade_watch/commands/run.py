"""`cce-upgrade-watch run`: the operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re

from cce_upgrade_watch.cce.bodies import DEFAULT_MAX_BODY_BYTES
from cce_upgrade_watch.cce.endpoints import (
    ALLOWED_HOSTS_FLAG,
    HUAWEI_CLOUD_API_HOSTS,
    INSECURE_LOOPBACK_FLAG,
    EndpointPolicy,
    parse_host_pattern,
)
from cce_upgrade_watch.cce.identity.providers import DOCUMENTED_METADATA_ENDPOINT
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.durations import parse_duration


def _whole_number(text: str, minimum: int, unit: str = "") -> int:
    of = f" of {unit}" if unit else ""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number{of}: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}{' ' + unit if unit else ''}")
    return value


def positive_bytes(text: str) -> int:
    """A byte count for `--cce-max-response-bytes`: a whole number from 1 KiB up."""
    return _whole_number(text, 1024, "bytes")


def _at_least_one(text: str) -> int:
    return _whole_number(text, 1)


def _host_patterns(text: str) -> list[str]:
    try:
        return [parse_host_pattern(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


AMBIENT_KINDS = ("metadata", "pod-identity", "oidc")


def _namespaces(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if not _NAMESPACE.fullmatch(name):
            raise argparse.ArgumentTypeError(f"not a namespace name: {name[:80]!r}")
    return names


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def configure(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; glob patterns as kopf accepts them)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default when no -n is given)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    parser.add_argument(
        "--metrics-address",
        default="0.0.0.0",  # noqa: S104 (inside a Pod, scraped from outside it)
        help="address for --metrics-port",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--default-poll-interval",
        type=parse_duration,
        default="5m",
        metavar="DURATION",
        help="poll period while no upgrade runs, for watches that set none (default 5m)",
    )
    parser.add_argument(
        "--default-active-poll-interval",
        type=parse_duration,
        default="30s",
        metavar="DURATION",
        help="poll period while an upgrade runs, for watches that set none (default 30s)",
    )
    parser.add_argument(
        "--max-initial-delay",
        type=parse_duration,
        default="10s",
        metavar="DURATION",
        help="spread first polls after a restart over up to this long (default 10s)",
    )
    parser.add_argument(
        "--secret-cache-ttl",
        type=parse_duration,
        default="5m",
        metavar="DURATION",
        help="reuse credentials read from a Secret this long (default 5m; a 401 re-reads)",
    )
    parser.add_argument(
        "--resync-interval",
        type=parse_duration,
        default="1h",
        metavar="DURATION",
        help="list the watches this often and stop polling those deleted without an "
        "event reaching the operator (default 1h; 0s: never)",
    )
    parser.add_argument(
        "--cce-concurrency",
        type=int,
        default=32,
        metavar="N",
        help="CCE API requests in flight at once, across all watches (default 32)",
    )
    parser.add_argument(
        "--max-concurrent-polls",
        type=_at_least_one,
        default=128,
        metavar="N",
        help="polls in flight at once, across all watches (default 128); due polls "
        "beyond it wait, taking turns by namespace",
    )
    parser.add_argument(
        "--cce-attempts",
        type=int,
        default=3,
        metavar="N",
        help="attempts per CCE request when throttled or unavailable (default 3)",
    )
    parser.add_argument(
        "--cce-timeout",
        type=parse_duration,
        default="15s",
        metavar="DURATION",
        help="give each CCE request attempt this long in all, reading the answer "
        "included, before retrying (default 15s)",
    )
    parser.add_argument(
        "--cce-max-response-bytes",
        type=positive_bytes,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help="refuse CCE answers larger than N bytes, as sent or decompressed "
        "(default 1048576, 1 MiB): InvalidResponse",
    )
    trust = parser.add_argument_group("where credentials may go")
    trust.add_argument(
        ALLOWED_HOSTS_FLAG,
        type=_host_patterns,
        action="extend",
        default=[],
        metavar="PATTERN,...",
        help="also send credentials to these hosts: 'host.example.com' or '*.example.com' "
        "(comma-separated, repeatable; no IP addresses). Without it only Huawei Cloud's "
        f"API domains ({', '.join(HUAWEI_CLOUD_API_HOSTS)}) are called; a watch naming "
        "another endpoint gets Synced=False EndpointNotAllowed",
    )
    trust.add_argument(
        INSECURE_LOOPBACK_FLAG,
        action="store_true",
        help="allow endpoints on loopback hosts (127.0.0.0/8, ::1, localhost), also over "
        "plain http://: for the simulator in tests and the demo, never in a cluster",
    )
    keyless = parser.add_argument_group("keyless identities (spec.identity)")
    keyless.add_argument(
        "--ambient-credentials",
        choices=AMBIENT_KINDS,
        default=None,
        help="let watches use the operator's own identity (spec.identity.ambient): the "
        "node's agency from the ECS metadata service, CCE pod identity "
        "(HC_CONTAINER_CREDENTIALS_FULL_URI, HC_CONTAINER_AUTHORIZATION_TOKEN_FILE) or the "
        "operator's ServiceAccount through STS (HUAWEICLOUD_OIDC_PROVIDER_URN, "
        "HUAWEICLOUD_OIDC_AGENCY_URN, HUAWEICLOUD_OIDC_TOKEN_FILE); off by default",
    )
    keyless.add_argument(
        "--ambient-credentials-namespaces",
        type=_namespaces,
        action="extend",
        default=[],
        metavar="NS,...",
        help="the namespaces whose watches may use the ambient identity (comma-separated, "
        "repeatable); a watch elsewhere gets Synced=False IdentityNotAllowed, nothing sent",
    )
    keyless.add_argument(
        "--metadata-endpoint",
        default=DOCUMENTED_METADATA_ENDPOINT,
        metavar="URL",
        help=f"the ECS metadata service for --ambient-credentials metadata "
        f"(default {DOCUMENTED_METADATA_ENDPOINT}; http only to loopback or link-local hosts)",
    )
    keyless.add_argument(
        "--sts-endpoint",
        default=None,
        metavar="URL",
        help="the STS endpoint for every watch (default: the watch's region's, "
        "https://sts.<region>.myhuaweicloud.com); must pass the endpoint allow-list",
    )
    keyless.add_argument(
        "--iam-endpoint",
        default=None,
        metavar="URL",
        help="the IAM endpoint for identity.oidc.identityProviderId (default: the watch's "
        "region's); must pass the endpoint allow-list",
    )
    parser.add_argument(
        "-l",
        "--selector",
        metavar="LABELS",
        default=None,
        help="only watch objects with these labels (a label selector such as "
        "'shard=a'): run one replica per shard to spread the polling",
    )
    peering = parser.add_argument_group("high availability")
    peering.add_argument(
        "--peering",
        metavar="NAME",
        default=None,
        help="coordinate with other replicas through the KopfPeering object NAME "
        "(without it the operator runs standalone): only the highest --priority works; "
        "replicas of equal priority all pause",
    )
    # kopf/_core/engines/peering.py (kopf 1.45, `process_peering_event`): a live peer of
    # higher priority pauses this replica; live peers of EQUAL priority pause every one
    # of them, this one included ("Pausing all operators, including self"); they resume
    # only when the others are gone. (kopf skips that only for its `shard_selectors`
    # setting, which this operator does not use: `--selector` sets `label_selectors`.)
    peering.add_argument(
        "--priority",
        type=int,
        default=0,
        help="peering priority (default 0): the replica with the highest priority works, "
        "lower ones stand by; replicas of EQUAL priority all pause, this one included, "
        "until only one of them is left (kopf's rule, also with --selector); so give "
        "every replica of one peering a distinct priority",
    )
    peering.add_argument(
        "--peering-lifetime",
        type=parse_duration,
        default="60s",
        metavar="DURATION",
        help="a replica that stops renewing its peering record for this long counts as "
        "dead and a standby takes over (default 60s)",
    )


#: Full garbage collections freeze what they leave alive only once no watch was
#: added for this long (gcpolicy.py): not in the middle of a start-up's burst.
SETTLED_SECONDS = 60.0

#: Loggers that never go below INFO, whatever `-v` says: older `kubernetes`
#: releases log every response body at DEBUG in `kubernetes.client.rest` (Secret
#: data included), and urllib3 logs request lines with their URLs.
PINNED_LOGGERS = ("kubernetes.client.rest", "urllib3")


def configure_logging(*, verbose: bool, log_format: str) -> None:
    import kopf

    kopf.configure(
        verbose=verbose,
        debug=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
    )
    if not verbose:
        # httpx logs every request at INFO: one line per poll is noise, not news.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # kopf's liveness endpoint (aiohttp) logs every request at INFO: in a Pod that
        # is a line per kubelet probe, every 10 to 20 s, burying everything else.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name in PINNED_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))


def _check_ambient(config: OperatorConfig) -> None:
    """Refuse to start with a half-configured ambient identity (nothing is sent)."""
    import httpx

    from cce_upgrade_watch.cce.identity import IdentityHttp
    from cce_upgrade_watch.cce.senders import AiohttpSender
    from cce_upgrade_watch.identities import ambient_provider

    assert config.ambient_credentials is not None
    try:
        ambient_provider(
            config.ambient_credentials,
            http=IdentityHttp(AiohttpSender(httpx.Timeout(5.0), 1)),  # never opened
            env=os.environ,
            metadata_endpoint=config.metadata_endpoint,
            sts_endpoint=config.sts_endpoint,
            policy=config.endpoint_policy,
        )
    except ValueError as exc:
        raise SystemExit(f"--ambient-credentials {config.ambient_credentials}: {exc}") from None


def execute(args: argparse.Namespace) -> int:
    # kopf is imported here, not at module level, so other subcommands start fast.
    import kopf

    from cce_upgrade_watch import gcpolicy, handlers, metrics_http
    from cce_upgrade_watch.metrics import OperatorMetrics
    from cce_upgrade_watch.resource import GROUP, PLURAL, VERSION

    configure_logging(verbose=args.verbose, log_format=args.log_format)
    config = OperatorConfig(
        default_poll_interval=args.default_poll_interval,
        default_active_poll_interval=args.default_active_poll_interval,
        max_initial_delay=args.max_initial_delay.total_seconds(),
        secret_cache_ttl=args.secret_cache_ttl.total_seconds(),
        cce_max_in_flight=args.cce_concurrency,
        max_concurrent_polls=args.max_concurrent_polls,
        resync_interval=args.resync_interval.total_seconds(),
        cce_max_attempts=args.cce_attempts,
        cce_timeout=args.cce_timeout.total_seconds(),
        cce_max_response_bytes=args.cce_max_response_bytes,
        namespaces=tuple(args.namespaces),
        endpoint_policy=EndpointPolicy.from_flags(
            args.allowed_endpoint_hosts, allow_insecure_loopback=args.allow_insecure_loopback
        ),
        ambient_credentials=args.ambient_credentials,
        ambient_namespaces=frozenset(args.ambient_credentials_namespaces),
        metadata_endpoint=args.metadata_endpoint,
        sts_endpoint=args.sts_endpoint,
        iam_endpoint=args.iam_endpoint,
    )
    if args.ambient_credentials_namespaces and not args.ambient_credentials:
        raise SystemExit("--ambient-credentials-namespaces needs --ambient-credentials")
    if args.ambient_credentials:
        _check_ambient(config)
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = max(1, round(args.peering_lifetime.total_seconds()))
    if args.selector:
        settings.watching.label_selectors[GROUP, VERSION, PLURAL] = args.selector
    metrics = OperatorMetrics()
    # Bound now, so a port in use stops the start before anything else runs.
    metrics_socket = (
        None
        if args.metrics_port is None
        else metrics_http.bind(args.metrics_port, args.metrics_address)
    )
    del handlers  # imported for its registrations

    memo = kopf.Memo(config=config, metrics=metrics)

    async def operate() -> None:
        gcpolicy.freeze_after_full_collections(
            lambda: (
                (scheduler := memo.get("scheduler")) is not None
                and scheduler.settled(SETTLED_SECONDS)
            )
        )
        refreeze = asyncio.create_task(gcpolicy.collect_frozen_every(), name="gc")
        runner = (
            None
            if metrics_socket is None
            else await metrics_http.serve(metrics.registry, metrics_socket)
        )
        try:
            await kopf.operator(
                clusterwide=not args.namespaces,
                namespaces=args.namespaces,
                liveness_endpoint=args.liveness,
                standalone=args.peering is None,
                peering_name=args.peering,
                priority=args.priority,
                settings=settings,
                memo=memo,
            )
        finally:
            refreeze.cancel()
            if runner is not None:
                await runner.cleanup()

    asyncio.run(operate())
    return 0
