"""`cce-upgrade-watch simulate`: serve the CCE Autopilot upgrade-workflow API locally.

Prints `simulator listening on http://HOST:PORT` on stdout once it accepts
connections (scripts read that line; `--port-file` writes the port too), then
serves until interrupted. Everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
from pathlib import Path

from cce_upgrade_watch.simulator.identity import load_identity_config
from cce_upgrade_watch.simulator.scenarios import (
    DEMO_ACCESS_KEY,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    DEMO_TOKEN,
    CredentialSpec,
    ScenarioError,
    builtin_scenario_names,
    is_project_id,
    load_credentials_file,
    load_scenario,
)
from cce_upgrade_watch.simulator.server import SimulatorServer

EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind; 0 (the default) picks a free one"
    )
    parser.add_argument(
        "--port-file", type=Path, metavar="PATH", help="write the bound port to this file"
    )
    parser.add_argument(
        "--scenario",
        default="idle",
        metavar="NAME|FILE",
        help=f"a built-in scenario ({', '.join(builtin_scenario_names())}) or a YAML/JSON "
        "file (default: idle)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="run scenario time this many times faster (10: a 200 s upgrade takes 20 s)",
    )
    credentials = parser.add_argument_group(
        "credentials",
        "Accepted in addition to the scenario's. With none here and none in the scenario, "
        f"the demo credentials apply: project {DEMO_PROJECT_ID}, AK {DEMO_ACCESS_KEY}, "
        f"SK {DEMO_SECRET_KEY}, token {DEMO_TOKEN}.",
    )
    credentials.add_argument(
        "--credentials-file",
        type=Path,
        metavar="PATH",
        help="YAML/JSON list of {projectId, accessKey, secretKey, securityToken, tokens}",
    )
    credentials.add_argument("--project-id", help="the project the flags below belong to")
    credentials.add_argument(
        "--access-key",
        default=os.environ.get("CLOUD_SDK_AK"),
        help="accepted AK (default: $CLOUD_SDK_AK, used only with --project-id)",
    )
    credentials.add_argument(
        "--secret-key",
        default=os.environ.get("CLOUD_SDK_SK"),
        help="its SK (default: $CLOUD_SDK_SK)",
    )
    credentials.add_argument(
        "--security-token", help="makes the AK/SK temporary: requests must send it"
    )
    credentials.add_argument(
        "--token", action="append", default=[], help="an accepted X-Auth-Token (repeatable)"
    )
    parser.add_argument(
        "--identity-config",
        type=Path,
        metavar="PATH",
        help="YAML/JSON: OIDC providers, agencies and their trust, the node agency and pod "
        "identity associations, for the STS/IAM/metadata/pod-identity endpoints "
        "(see the simulator README; also PUT /_sim/identity)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="serve HTTPS with this certificate (chain) instead of HTTP; needs --tls-key",
    )
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's key")


def _flag_credentials(args: argparse.Namespace) -> list[CredentialSpec]:
    specs: list[CredentialSpec] = []
    if args.credentials_file is not None:
        specs.extend(load_credentials_file(args.credentials_file))
    if args.project_id is None:
        if args.token or args.security_token:
            raise ScenarioError("--token and --security-token need --project-id")
        return specs
    if not is_project_id(args.project_id):
        raise ScenarioError("--project-id must be 32 lowercase hex characters")
    has_keys = args.access_key is not None and args.secret_key is not None
    if (args.access_key is None) != (args.secret_key is None):
        raise ScenarioError("give both --access-key and --secret-key (or neither)")
    if not has_keys and not args.token:
        raise ScenarioError("--project-id needs --access-key/--secret-key or --token")
    specs.append(
        CredentialSpec(
            project_id=args.project_id,
            access_key=args.access_key if has_keys else None,
            secret_key=args.secret_key if has_keys else None,
            security_token=args.security_token,
            tokens=tuple(args.token),
        )
    )
    return specs


def _write_port_file(path: Path, port: int) -> None:
    # Write then rename, so a script polling for the file never reads half of it.
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{port}\n", encoding="utf-8")
    temporary.replace(path)


async def _serve(server: SimulatorServer, port_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        if port_file is not None:
            _write_port_file(port_file, server.port)
        state = server.state
        scenario = state.scenario.name if state.scenario else "none"
        print(
            f"scenario {scenario}: {len(state.clusters)} cluster(s), time scale "
            f"{state.time_scale:g}; control API at {server.url}/_sim/",
            file=sys.stderr,
            flush=True,
        )
        print(f"simulator listening on {server.url}", flush=True)
        await stop.wait()
    finally:
        await server.stop()


def execute(args: argparse.Namespace) -> int:
    if args.time_scale <= 0:
        print("simulate: --time-scale must be positive", file=sys.stderr)
        return EXIT_USAGE
    if not 0 <= args.port <= 65535:
        print("simulate: --port must be from 0 to 65535", file=sys.stderr)
        return EXIT_USAGE
    ssl_context = None
    if (args.tls_cert is None) != (args.tls_key is None):
        print("simulate: give both --tls-cert and --tls-key (or neither)", file=sys.stderr)
        return EXIT_USAGE
    if args.tls_cert is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"simulate: cannot load --tls-cert/--tls-key: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        server = SimulatorServer(
            load_scenario(args.scenario),
            time_scale=args.time_scale,
            host=args.host,
            port=args.port,
            credentials=_flag_credentials(args),
            access_log=args.access_log,
            ssl_context=ssl_context,
        )
        if args.identity_config is not None:
            server.state.identity.configure(load_identity_config(args.identity_config))
    except (ScenarioError, ValueError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.access_log:
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        asyncio.run(_serve(server, args.port_file))
    except OSError as exc:  # the port is taken, the host cannot be bound
        print(f"simulate: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
