"""`cce-upgrade-watch check`: query a cluster's upgrade workflows once and print them.

A quick way to test credentials, region and ids before writing a
`CceUpgradeWatch`, and to see what the operator will see: `-o json` prints each
workflow in exactly the shape the object's status uses. After the workflows
come the lifecycle sections (pre-check findings, next upgrade, versions, last
backup; `check_lifecycle.py`); a lifecycle call that is not available (404,
403) shows so in its section and does not fail the check.

Credentials come from the environment: long-lived or temporary AK/SK, an IAM
token, or, with none of those, a keyless path with the official SDK's variable
names (OIDC federation through STS, two-step IAM federation, CCE pod identity),
or the ECS metadata service at `--metadata-endpoint`. `--assume-agency` turns
any AK/SK source into credentials of an agency in another account.

Exit codes: 0 ok, 2 usage, 3 credentials rejected or missing (or no temporary
credentials could be obtained), 4 cluster not found, 5 any other API failure.
Errors go to stderr as one line quoting the CCE error code, its message and
the request id; never a credential.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import httpx

from cce_upgrade_watch.cce.auth import AkSkAuth, TokenAuth
from cce_upgrade_watch.cce.bodies import DEFAULT_MAX_BODY_BYTES
from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.endpoints import resolve_endpoint
from cce_upgrade_watch.cce.errors import (
    CceError,
    ClusterNotFound,
    CredentialsMissing,
    CredentialsRejected,
    EndpointError,
)
from cce_upgrade_watch.cce.identity import (
    AssumeAgencyProvider,
    CredentialProvider,
    IdentityExchangeFailed,
    IdentityHttp,
    KeyCredentials,
    StaticProvider,
)
from cce_upgrade_watch.cce.identity import env as identity_env
from cce_upgrade_watch.cce.identity.providers import DOCUMENTED_METADATA_ENDPOINT
from cce_upgrade_watch.cce.models import UpgradeWorkflow, Workflows
from cce_upgrade_watch.cce.ordering import current_first
from cce_upgrade_watch.cce.senders import AiohttpSender
from cce_upgrade_watch.cce.views import workflow_to_status_dict
from cce_upgrade_watch.commands.check_lifecycle import (
    LifecycleReport,
    fetch_lifecycle,
    render_lifecycle,
)
from cce_upgrade_watch.commands.run import positive_bytes

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CREDENTIALS = 3
EXIT_NOT_FOUND = 4
EXIT_API_FAILURE = 5

ENV_ACCESS_KEY = "CLOUD_SDK_AK"
ENV_SECRET_KEY = "CLOUD_SDK_SK"  # noqa: S105 (a variable name)
ENV_SECURITY_TOKEN = "CLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 (a variable name)
ENV_TOKEN = "CCE_AUTH_TOKEN"  # noqa: S105 (a variable name)

_EPILOG = f"""\
credentials (from the environment, as in the official SDK samples):
  {ENV_ACCESS_KEY}, {ENV_SECRET_KEY}   an access key pair (AK/SK signing)
  {ENV_SECURITY_TOKEN}      with temporary AK/SK only
  {ENV_TOKEN}                an IAM token instead (used when no AK/SK is set)

keyless, when none of the above is set (the official SDK's variable names):
  {identity_env.OIDC_PROVIDER_URN}, {identity_env.OIDC_AGENCY_URN},
  {identity_env.OIDC_ID_TOKEN} or {identity_env.OIDC_TOKEN_FILE}
  ({identity_env.OIDC_DURATION_SECONDS})
                          OIDC federation through STS (AssumeAgencyWithOIDC)
  {identity_env.IDP_ID}, {identity_env.ID_TOKEN_FILE}
                          two-step IAM federation (id token -> temporary AK/SK)
  {identity_env.POD_IDENTITY_URI}, {identity_env.POD_IDENTITY_TOKEN_FILE}
                          CCE pod identity
  --metadata-endpoint URL the ECS metadata service (the node's agency)
  {identity_env.STS_ENDPOINT}, {identity_env.IAM_ENDPOINT}
                          STS / IAM endpoints (default: the region's)

exit codes: 0 ok, 2 usage, 3 credentials rejected or missing,
            4 cluster not found, 5 any other API failure
"""


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 600 seconds")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", help="Huawei Cloud region, e.g. ap-southeast-1")
    where.add_argument(
        "--endpoint",
        metavar="URL",
        help="endpoint override (https://, or http:// to a loopback host only)",
    )
    parser.add_argument("--project-id", required=True, help="project id (32 hex characters)")
    parser.add_argument("--cluster-id", required=True, help="cluster id (a UUID)")
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=15.0,
        metavar="SECONDS",
        help="seconds to wait for each answer (default 15; connecting waits at most 5)",
    )
    parser.add_argument(
        "--cce-max-response-bytes",
        type=positive_bytes,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help="refuse answers larger than N bytes, as sent or decompressed (default 1 MiB)",
    )
    parser.add_argument(
        "--metadata-endpoint",
        metavar="URL",
        help="use the node's agency from the ECS metadata service at URL "
        f"(on an ECS: {DOCUMENTED_METADATA_ENDPOINT})",
    )
    parser.add_argument(
        "--assume-agency",
        metavar="URN",
        help="then assume this agency (iam::ACCOUNT:agency:NAME) through STS: cross-account",
    )


def has_static_credentials(env: Mapping[str, str]) -> bool:
    return any(env.get(name, "").strip() for name in (ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_TOKEN))


def credentials_from_env(env: Mapping[str, str], project_id: str) -> httpx.Auth:
    """AK/SK when either key is set, else a token; `CredentialsMissing` if neither."""
    access_key, secret_key = env.get(ENV_ACCESS_KEY, ""), env.get(ENV_SECRET_KEY, "")
    if access_key.strip() or secret_key.strip():
        if not access_key.strip():
            raise CredentialsMissing(f"{ENV_SECRET_KEY} is set but {ENV_ACCESS_KEY} is not")
        if not secret_key.strip():
            raise CredentialsMissing(f"{ENV_ACCESS_KEY} is set but {ENV_SECRET_KEY} is not")
        return AkSkAuth(access_key, secret_key, project_id, env.get(ENV_SECURITY_TOKEN) or None)
    token = env.get(ENV_TOKEN, "")
    if token.strip():
        return TokenAuth(token)
    raise CredentialsMissing(
        f"no credentials: set {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} "
        f"(plus {ENV_SECURITY_TOKEN} for temporary keys), or {ENV_TOKEN}, or a keyless "
        f"path ({identity_env.OIDC_PROVIDER_URN}..., {identity_env.IDP_ID}..., "
        f"{identity_env.POD_IDENTITY_URI}..., or --metadata-endpoint); see --help"
    )


def execute(args: argparse.Namespace) -> int:
    if not args.project_id.strip() or not args.cluster_id.strip():
        return _fail("--project-id and --cluster-id must not be empty", EXIT_USAGE)
    try:
        endpoint = resolve_endpoint(region=args.region, endpoint=args.endpoint)
    except EndpointError as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        auth = auth_from_environment(args)
    except (CredentialsMissing, IdentityExchangeFailed) as exc:
        return _fail(str(exc), EXIT_CREDENTIALS)
    except EndpointError as exc:
        return _fail(str(exc), EXIT_USAGE)

    client = CceClient(
        timeout=httpx.Timeout(args.timeout, connect=min(5.0, args.timeout)),
        max_in_flight=1,
        max_response_bytes=args.cce_max_response_bytes,
    )
    try:
        workflows, lifecycle = asyncio.run(
            _fetch(client, args.project_id, args.cluster_id, endpoint=endpoint, auth=auth)
        )
    except CredentialsRejected as exc:
        return _fail(str(exc), EXIT_CREDENTIALS)
    except ClusterNotFound as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except CceError as exc:
        return _fail(str(exc), EXIT_API_FAILURE)

    if workflows.dropped:
        # As the operator logs them: the answer was usable, but not all of it.
        left_out = "; ".join(f"{d.field} x{d.count} ({d.why})" for d in workflows.dropped)
        print(
            f"cce-upgrade-watch check: warning: left out unreadable fields: {left_out}",
            file=sys.stderr,
        )
    # The operator's own order: the workflow it would mirror comes first.
    ordered = current_first(workflows)
    if args.output == "json":
        text = render_json(ordered, lifecycle) + "\n"
    else:
        text = render_table(ordered, cluster_id=args.cluster_id)
        text += "\n".join(render_lifecycle(lifecycle)) + "\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left early (`check | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for call, error in lifecycle.errors.items():
        _fail(f"{call}: {error}", EXIT_API_FAILURE)
    return EXIT_API_FAILURE if lifecycle.errors else EXIT_OK


def auth_from_environment(args: argparse.Namespace) -> httpx.Auth:
    """The environment's static credentials, or temporary ones obtained now through
    the keyless path it describes (then `--assume-agency`, when given)."""
    env = os.environ
    if not args.metadata_endpoint and has_static_credentials(env):
        auth = credentials_from_env(env, args.project_id)
        if not args.assume_agency:
            return auth
        if not isinstance(auth, AkSkAuth):
            raise CredentialsMissing(f"--assume-agency signs with AK/SK; {ENV_TOKEN} cannot")
        static = KeyCredentials(
            env[ENV_ACCESS_KEY].strip(),
            env[ENV_SECRET_KEY].strip(),
            env.get(ENV_SECURITY_TOKEN, "").strip() or None,
        )
        return asyncio.run(_exchange(args, StaticProvider(static, label=ENV_ACCESS_KEY)))
    return asyncio.run(_exchange(args, None))


async def _exchange(args: argparse.Namespace, source: CredentialProvider | None) -> httpx.Auth:
    env = os.environ
    http = IdentityHttp(
        AiohttpSender(httpx.Timeout(args.timeout, connect=min(5.0, args.timeout)), 2)
    )
    try:
        provider = source or identity_env.provider_from_env(
            env, http=http, region=args.region, metadata_endpoint=args.metadata_endpoint
        )
        if provider is None:
            credentials_from_env(env, args.project_id)  # raises, naming every option
            raise AssertionError("unreachable")
        if args.assume_agency:
            provider = AssumeAgencyProvider(
                http=http,
                sts_endpoint=identity_env.service_endpoint(env, "sts", args.region),
                agency_urn=args.assume_agency.strip(),
                source=provider.fetch,
                source_identity=provider.identity,
            )
        return (await provider.fetch()).auth(args.project_id)
    finally:
        await http.aclose()


async def _fetch(
    client: CceClient, project_id: str, cluster_id: str, *, endpoint: str, auth: httpx.Auth
) -> tuple[Workflows, LifecycleReport]:
    """The workflows (as the API sent them), then the lifecycle calls, which need not
    all work (the pre-check is the current workflow's, as the operator orders them)."""
    async with client:
        workflows = await client.list_upgrade_workflows(
            project_id, cluster_id, endpoint=endpoint, auth=auth
        )
        lifecycle = await fetch_lifecycle(
            client,
            project_id,
            cluster_id,
            endpoint=endpoint,
            auth=auth,
            workflows=current_first(workflows),
            now=datetime.now(UTC),
        )
        return workflows, lifecycle


def _fail(message: str, code: int) -> int:
    print(f"cce-upgrade-watch check: error: {message}", file=sys.stderr)
    return code


def render_json(
    workflows: Sequence[UpgradeWorkflow], lifecycle: LifecycleReport | None = None
) -> str:
    """`{"workflows": [...], ...}` in the status shape, workflows in the order given,
    then the lifecycle sections (`preCheck`, `nextUpgrade`, `versions`,
    `lastBackupTime`, and `notAvailable` / `errors` by call)."""
    document: dict[str, object] = {"workflows": [workflow_to_status_dict(w) for w in workflows]}
    if lifecycle is not None:
        document.update(lifecycle.to_json())
    return json.dumps(document, indent=2)


def render_table(workflows: Sequence[UpgradeWorkflow], *, cluster_id: str) -> str:
    """A human summary: per workflow its phase, versions and times, then one row per task."""
    if not workflows:
        return f"Cluster {cluster_id} has no upgrade workflows.\n"
    count = f"{len(workflows)} upgrade workflow" + (
        "s, current first" if len(workflows) > 1 else ""
    )
    lines = [f"Cluster {cluster_id}: {count}"]
    for workflow in workflows:
        lines.append("")
        lines.extend(_workflow_block(workflow_to_status_dict(workflow)))
    return "\n".join(lines) + "\n"


def _workflow_block(status: Mapping[str, object]) -> list[str]:
    versions = f"{status.get('clusterVersion', '?')} -> {status.get('targetVersion', '?')}"
    lines = [
        f"Workflow {status.get('workflowID', '(no id)')}",
        f"  Phase:    {status.get('phase', '-')}",
        f"  Versions: {versions}",
        f"  Created:  {status.get('createdAt', '-')}",
        f"  Updated:  {status.get('updatedAt', '-')}",
    ]
    path = ", ".join(_edge(line) for line in _dicts(status.get("lineStatuses")))
    if path:
        lines.append(f"  Path:     {path}")
    points = _dicts(status.get("pointStatuses"))
    if points:
        header = ("TASK", "STATUS", "STARTED", "ENDED", "EXPIRES", "TASK ID")
        keys = ("taskType", "status", "startTimeStamp", "endTimeStamp", "expireTimeStamp", "taskID")
        rows = [header, *(tuple(str(p.get(k, "-")) for k in keys) for p in points)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines.append("")
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _edge(line: Mapping[str, object]) -> str:
    start = _dicts([line.get("startPoint")])
    end = _dicts([line.get("endPoint")])
    text = (
        f"{start[0].get('taskType', '?') if start else '?'} -> "
        f"{end[0].get('taskType', '?') if end else '?'}"
    )
    return text + (" (critical)" if line.get("critical") is True else "")


def _dicts(value: object) -> list[Mapping[str, object]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
