"""The simulator's identity endpoints: STS, the two-step IAM path, the ECS
metadata service and CCE's pod-identity agent, as the official SDK calls them.

    POST /v5/agencies/assume-with-oidc        STS AssumeAgencyWithOIDC (unsigned)
    POST /v5/agencies/assume                  STS AssumeAgency (signed, X-Security-Token)
    POST /v3.0/OS-AUTH/id-token/tokens        IAM: id token -> unscoped token (X-Subject-Token)
    POST /v3.0/OS-CREDENTIAL/securitytokens   IAM: token -> temporary AK/SK
    PUT  /meta-data/latest/api/token          metadata session token
    GET  /openstack/latest/securitykey        the node agency's temporary AK/SK
    POST /v1/pod-identity/credentials         pod identity (token in Authorization)
    GET|PUT /_sim/identity                    the configuration (see `identity.py`)
    POST|DELETE /_sim/identity/outage         {"kind", "count"?}: answer 503 (an outage)
    GET  /_sim/identity/issued                every secret handed out (for hygiene tests)

Issued keys go into the same credential store the CCE API checks, with their
projects and expiry, so the CCE API accepts them (signature and X-Security-Token)
until they expire. Error codes are the simulator's own (`STS.0400`...,
`IAM.0400`...): Huawei documents the status codes, not these strings.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cce_upgrade_watch.cce.identity.providers import NO_AGENCY_TEXT
from cce_upgrade_watch.cce.signing import parse_authorization
from cce_upgrade_watch.simulator.identity import (
    AgencyModel,
    IdentityConfig,
    IdentityConfigError,
    Issued,
    ProviderModel,
    TokenRejected,
    new_access_key,
    new_secret,
)
from cce_upgrade_watch.simulator.state import SimulatorState

#: STS: 15 minutes to the agency's maximum of 12 hours; IAM securitytokens: up to 24 h.
STS_DURATION = (900, 12 * 3600)
IAM_DURATION = (900, 24 * 3600)
UNSCOPED_TOKEN_SECONDS = 600
METADATA_TOKEN_MAX_TTL = 6 * 3600
POD_IDENTITY_PATH = "/v1/pod-identity/credentials"
MAX_BODY = 64 * 1024


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


def _sts_error(status: int, message: str, kind: str = "sts") -> Refusal:
    return Refusal(status, f"STS.{status:04d}", message, kind=kind)


def _iam_error(status: int, message: str) -> Refusal:
    return Refusal(status, f"IAM.{status:04d}", message, kind="iam")


def _expiry_text(epoch: float) -> str:
    # The SDK reads "%Y-%m-%dT%H:%M:%S.%fZ" and nothing else: milliseconds and a Z.
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _issue(state: SimulatorState, agency: AgencyModel, seconds: float) -> Issued:
    identity = state.identity
    cap = identity.config.credential_lifetime_seconds
    lifetime = min(seconds, cap) if cap else seconds
    now = state.wall_clock()
    issued = Issued(new_access_key(), new_secret(40), new_secret(320), now + lifetime, agency.urn)
    state.credentials.add_temporary_key(
        frozenset(agency.project_ids),
        issued.access_key,
        issued.secret_key,
        issued.security_token,
        issued.expires_at,
        wall_now=now,
    )
    identity.sessions = {
        key: s for key, s in identity.sessions.items() if s.expires_at > now - 3600
    }
    identity.sessions[issued.access_key] = issued
    return issued


def _snake(issued: Issued) -> dict[str, str]:
    return {
        "access_key_id": issued.access_key,
        "secret_access_key": issued.secret_key,
        "security_token": issued.security_token,
        "expiration": _expiry_text(issued.expires_at),
    }


def _iam_credential(issued: Issued) -> dict[str, str]:
    return {
        "access": issued.access_key,
        "secret": issued.secret_key,
        "securitytoken": issued.security_token,
        "expires_at": _expiry_text(issued.expires_at),
    }


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _sts_error(400, "the request body is too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise _sts_error(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise _sts_error(400, "the request body must be a JSON object")
    return body


def _duration(value: Any, bounds: tuple[int, int], default: int) -> int:
    if value is None:
        return default
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not (bounds[0] <= value <= bounds[1])
    ):
        raise _sts_error(
            400, f"duration_seconds must be an integer from {bounds[0]} to {bounds[1]}"
        )
    return value


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _sts_error(400, f"{key} is required")
    return value


async def _subject(state: SimulatorState, token: str, provider: ProviderModel, kind: str) -> str:
    try:
        claims = await state.identity.verifier.verify(token, provider)
    except TokenRejected as exc:
        raise Refusal(403, "STS.0403", str(exc), kind=kind) from None
    return str(claims["sub"])


def _trusted(agency: AgencyModel, provider: ProviderModel, subject: str, kind: str) -> None:
    for trust in agency.trusted_subjects:
        if trust.provider == provider.urn and trust.subject == subject:
            return
    raise Refusal(
        403,
        "STS.0403",
        f"agency {agency.urn} does not trust {subject} from {provider.urn}",
        kind=kind,
    )


def _agency(config: IdentityConfig, urn: str, kind: str) -> AgencyModel:
    agency = config.agency(urn)
    if agency is None:
        raise Refusal(404, "STS.0404", f"no agency {urn}", kind=kind)
    return agency


# ---- the endpoints -------------------------------------------------------------------


async def assume_with_oidc(request: web.Request, state: SimulatorState) -> web.Response:
    body = await _body(request)
    config = state.identity.config
    provider = config.provider(_text(body, "provider_urn"))
    if provider is None:
        raise _sts_error(404, f"no identity provider {body['provider_urn']}", "oidc")
    token = _text(body, "id_token")
    duration = _duration(body.get("duration_seconds"), STS_DURATION, 3600)
    agency = _agency(config, _text(body, "agency_urn"), "oidc")
    subject = await _subject(state, token, provider, "oidc")
    _trusted(agency, provider, subject, "oidc")
    issued = _issue(state, agency, duration)
    return _json(
        {
            "credentials": _snake(issued),
            "assumed_agency": {
                "urn": f"{agency.urn}/{body.get('agency_session_name') or 'session'}",
                "id": issued.access_key[-8:],
            },
            "audience": provider.audiences[0],
            "provider": provider.urn,
            "subject_from_id_token": subject,
        }
    )


async def assume_agency(request: web.Request, state: SimulatorState) -> web.Response:
    raw = await request.read()
    if parse_authorization(request.headers.get("Authorization", "")) is None:
        raise Refusal(401, "STS.0401", "AssumeAgency needs an AK/SK signature", kind="assume")
    failure = state.credentials.authenticate(
        method=request.method,
        raw_path=request.rel_url.raw_path,
        raw_query=request.rel_url.raw_query_string,
        headers=request.headers,
        body=raw,
        project_id=None,
        wall_now=state.wall_clock(),
    )
    if failure is not None:
        raise Refusal(401, "STS.0401", failure.message, kind="assume")
    parsed = parse_authorization(request.headers.get("Authorization", ""))
    assert parsed is not None  # authenticate() accepted it
    access_key = parsed[0]
    try:
        body = json.loads(raw)
    except ValueError:
        raise _sts_error(400, "the request body is not JSON", "assume") from None
    if not isinstance(body, dict):
        raise _sts_error(400, "the request body must be a JSON object", "assume")
    agency = _agency(state.identity.config, _text(body, "agency_urn"), "assume")
    duration = _duration(body.get("duration_seconds"), STS_DURATION, 3600)
    session = state.identity.sessions.get(access_key)
    trusted = (
        session is not None and session.agency in agency.trusted_agencies
    ) or access_key in agency.trusted_access_keys
    if not trusted:
        caller = f"a session of {session.agency}" if session else "this access key"
        raise Refusal(
            403, "STS.0403", f"agency {agency.urn} does not trust {caller}", kind="assume"
        )
    issued = _issue(state, agency, duration)
    return _json(
        {
            "credentials": _snake(issued),
            "assumed_agency": {"urn": agency.urn, "id": issued.access_key[-8:]},
        }
    )


async def iam_id_token(request: web.Request, state: SimulatorState) -> web.Response:
    idp_id = request.headers.get("X-Idp-Id", "")
    provider = state.identity.config.provider_by_idp_id(idp_id) if idp_id else None
    if provider is None or provider.agency is None:
        raise _iam_error(404, f"no identity provider {idp_id!r} with an agency mapping")
    body = await _body(request)
    id_token = (body.get("auth") or {}).get("id_token", {}).get("id")
    if not isinstance(id_token, str) or not id_token:
        raise _iam_error(400, "auth.id_token.id is required")
    agency = _agency(state.identity.config, provider.agency, "iam")
    subject = await _subject(state, id_token, provider, "iam")
    _trusted(agency, provider, subject, "iam")
    unscoped = new_secret(120)
    now = state.wall_clock()
    tokens = state.identity.unscoped_tokens
    state.identity.unscoped_tokens = {k: v for k, v in tokens.items() if v[1] > now}
    state.identity.unscoped_tokens[unscoped] = (agency.urn, now + UNSCOPED_TOKEN_SECONDS)
    return _json(
        {
            "token": {
                "expires_at": _expiry_text(now + UNSCOPED_TOKEN_SECONDS),
                "methods": ["mapped"],
                "user": {"name": subject, "OS-FEDERATION": {"identity_provider": {"id": idp_id}}},
            }
        },
        status=201,
        headers={"X-Subject-Token": unscoped},
    )


async def iam_security_tokens(request: web.Request, state: SimulatorState) -> web.Response:
    body = await _body(request)
    identity = (body.get("auth") or {}).get("identity") or {}
    token_part = identity.get("token") or {}
    token = token_part.get("id") or request.headers.get("X-Auth-Token")
    if identity.get("methods") != ["token"] or not isinstance(token, str):
        raise _iam_error(400, 'auth.identity.methods must be ["token"] with token.id')
    known = state.identity.unscoped_tokens.get(token)
    if known is None or known[1] <= state.wall_clock():
        raise _iam_error(401, "the token is invalid or has expired")
    agency = _agency(state.identity.config, known[0], "iam")
    duration = _duration(token_part.get("duration_seconds"), IAM_DURATION, 900)
    issued = _issue(state, agency, duration)
    return _json({"credential": _iam_credential(issued)}, status=201)


async def metadata_token(request: web.Request, state: SimulatorState) -> web.Response:
    try:
        ttl = int(request.headers.get("X-Metadata-Token-Ttl-Seconds", "0"))
    except ValueError:
        ttl = 0
    if not 1 <= ttl <= METADATA_TOKEN_MAX_TTL:
        raise Refusal(
            400, "Metadata.0400", "X-Metadata-Token-Ttl-Seconds: 1 to 21600", kind="metadata"
        )
    token = new_secret(56)
    now = state.wall_clock()
    tokens = state.identity.metadata_tokens
    state.identity.metadata_tokens = {k: v for k, v in tokens.items() if v > now}
    state.identity.metadata_tokens[token] = now + ttl
    return web.Response(text=token)


async def metadata_security_key(request: web.Request, state: SimulatorState) -> web.Response:
    token = request.headers.get("X-Metadata-Token", "")
    expiry = state.identity.metadata_tokens.get(token)
    if expiry is None or expiry <= state.wall_clock():
        raise Refusal(401, "Metadata.0401", "a valid X-Metadata-Token is required", kind="metadata")
    urn = state.identity.config.metadata_agency
    if urn is None:
        raise Refusal(401, "Metadata.0401", NO_AGENCY_TEXT, kind="metadata")
    issued = _issue(state, _agency(state.identity.config, urn, "metadata"), 24 * 3600)
    return _json({"credential": _iam_credential(issued)})


async def pod_identity(request: web.Request, state: SimulatorState) -> web.Response:
    setup = state.identity.config.pod_identity
    provider = state.identity.config.provider(setup.provider) if setup else None
    if setup is None or provider is None:
        raise Refusal(404, "CCE.01404001", "pod identity is not enabled", kind="pod-identity")
    token = request.headers.get("Authorization", "").strip()
    if not token:
        raise Refusal(401, "CCE.01401001", "no token in Authorization", kind="pod-identity")
    subject = await _subject(state, token, provider, "pod-identity")
    parts = subject.split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        raise Refusal(
            403, "CCE.01403001", f"{subject} is not a ServiceAccount", kind="pod-identity"
        )
    namespace, name = parts[2], parts[3]
    association = next(
        (a for a in setup.associations if (a.namespace, a.service_account) == (namespace, name)),
        None,
    )
    if association is None:
        raise Refusal(
            403,
            "CCE.01403001",
            f"no pod identity association for {namespace}/{name}",
            kind="pod-identity",
        )
    issued = _issue(state, _agency(state.identity.config, association.agency, "pod-identity"), 3600)
    return _json(
        {
            "assumedAgency": {"urn": association.agency, "id": issued.access_key[-8:]},
            "audience": provider.audiences[0],
            "credentials": {
                "accessKeyId": issued.access_key,
                "secretAccessKey": issued.secret_key,
                "securityToken": issued.security_token,
                "expiration": _expiry_text(issued.expires_at),
            },
            "subject": {"namespace": namespace, "serviceAccount": name},
        }
    )


OUTAGE_KINDS = ("oidc", "assume", "iam", "metadata", "pod-identity")


async def start_outage(request: web.Request, state: SimulatorState) -> web.Response:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        body = None
    kind = body.get("kind") if isinstance(body, dict) else None
    count = body.get("count", -1) if isinstance(body, dict) else None
    if kind not in OUTAGE_KINDS or not isinstance(count, int) or count == 0 or count < -1:
        return web.json_response(
            {"error": f'give {{"kind": one of {list(OUTAGE_KINDS)}, "count": n or -1}}'},
            status=400,
        )
    state.identity.outages[kind] = count
    return web.json_response(state.identity.describe(), status=201)


async def end_outages(request: web.Request, state: SimulatorState) -> web.Response:
    state.identity.outages.clear()
    return web.json_response(state.identity.describe())


async def show_config(request: web.Request, state: SimulatorState) -> web.Response:
    return web.json_response(state.identity.describe())


async def show_issued(request: web.Request, state: SimulatorState) -> web.Response:
    """Every temporary secret issued so far, in full: the secret-hygiene tests
    search the operator's outputs for them. A test tool's control API only."""
    identity = state.identity
    return web.json_response(
        {
            "sessions": [
                {
                    "accessKey": s.access_key,
                    "secretKey": s.secret_key,
                    "securityToken": s.security_token,
                }
                for s in identity.sessions.values()
            ],
            "unscopedTokens": list(identity.unscoped_tokens),
            "metadataTokens": list(identity.metadata_tokens),
        }
    )


async def put_config(request: web.Request, state: SimulatorState) -> web.Response:
    try:
        data = json.loads(await request.read() or b"{}")
        state.identity.configure(data)
    except (ValueError, IdentityConfigError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(state.identity.describe())


# ---- wiring ----------------------------------------------------------------------------

Handler = Callable[[web.Request, SimulatorState], Awaitable[web.Response]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _route(
    handler: Handler, state: SimulatorState, group: str | None, counted: bool
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        identity = state.identity
        if group is not None and identity.take_outage(group):
            identity.refusals[group] = identity.refusals.get(group, 0) + 1
            return web.json_response(
                {"error_code": "STS.0503", "error_msg": "injected outage: service unavailable"},
                status=503,
            )
        try:
            response = await handler(request, state)
        except Refusal as exc:
            identity.refusals[exc.kind] = identity.refusals.get(exc.kind, 0) + 1
            if exc.kind == "iam":
                body: dict[str, Any] = {"error": {"code": exc.code, "message": exc.message}}
            else:
                body = {"error_code": exc.code, "error_msg": exc.message}
            return web.json_response(body, status=exc.status)
        if group is not None and counted:
            identity.exchanges[group] = identity.exchanges.get(group, 0) + 1
        return response

    return handle


def add_identity_routes(app: web.Application, state: SimulatorState) -> None:
    # (method, path, handler, its kind (outages; counts), whether a success is an exchange)
    routes: list[tuple[str, str, Handler, str | None, bool]] = [
        ("POST", "/v5/agencies/assume-with-oidc", assume_with_oidc, "oidc", True),
        ("POST", "/v5/agencies/assume", assume_agency, "assume", True),
        ("POST", "/v3.0/OS-AUTH/id-token/tokens", iam_id_token, "iam", False),
        ("POST", "/v3.0/OS-CREDENTIAL/securitytokens", iam_security_tokens, "iam", True),
        ("PUT", "/meta-data/latest/api/token", metadata_token, "metadata", False),
        ("GET", "/openstack/latest/securitykey", metadata_security_key, "metadata", True),
        ("POST", POD_IDENTITY_PATH, pod_identity, "pod-identity", True),
        ("GET", "/_sim/identity", show_config, None, False),
        ("PUT", "/_sim/identity", put_config, None, False),
        ("GET", "/_sim/identity/issued", show_issued, None, False),
        ("POST", "/_sim/identity/outage", start_outage, None, False),
        ("DELETE", "/_sim/identity/outage", end_outages, None, False),
    ]
    for method, path, handler, group, counted in routes:
        app.router.add_route(method, path, _route(handler, state, group, counted))
