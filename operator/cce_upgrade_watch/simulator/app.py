"""The aiohttp application: the CCE Autopilot upgrade-workflow API, as the cloud serves it.

Every request to the API goes through the same steps, in the cloud's order:
count it, apply injected faults (the gateway), authenticate and check the
project, find the cluster, then do the operation. Every answer, errors
included, carries an `X-Request-Id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cce_upgrade_watch.cce.signing import DATE_FORMAT, DATE_HEADER
from cce_upgrade_watch.simulator import control, lifecycle
from cce_upgrade_watch.simulator.auth import signature_expired
from cce_upgrade_watch.simulator.faults import (
    API_PLANS,
    API_PRECHECK,
    API_SNAPSHOTS,
    API_UPGRADE_INFO,
    API_WINDOW,
    API_WORKFLOWS,
    Fault,
    FaultKind,
)
from cce_upgrade_watch.simulator.identity_app import add_identity_routes
from cce_upgrade_watch.simulator.render import (
    CODE_INVALID_REQUEST,
    CODE_NOT_FOUND,
    default_error_code,
    error_body,
    render_list,
    render_workflow,
    timestamp_formatter,
)
from cce_upgrade_watch.simulator.state import (
    Cluster,
    ConflictError,
    ResponseStyle,
    SimulatorState,
    Workflow,
)
from cce_upgrade_watch.simulator.timeline import PHASE_CANCEL

logger = logging.getLogger(__name__)

STATE_KEY = web.AppKey("simulator_state", SimulatorState)
REQUEST_ID_HEADER = "X-Request-Id"

CLUSTER_PREFIX = "/autopilot/v3/projects/{project_id}/clusters/{cluster_id}"
API_PREFIX = CLUSTER_PREFIX + "/operation/upgradeworkflows"

# Throttling comes from the API gateway, which has its own codes.
THROTTLE_CODE = "APIGW.0308"
THROTTLE_MESSAGE = "The throttling threshold has been reached"
# So do a wrong endpoint and a stale signature; the codes and texts of Huawei
# Cloud's "API Gateway > Error Codes" page and of the "API Request Signing Guide
# > FAQs" (see the simulator's README).
NOT_PUBLISHED_CODE = "APIGW.0101"
NOT_PUBLISHED_MESSAGE = "The API does not exist or has not been published in the environment."
# One JSON value of whitespace: what the body faults send (valid JSON, no end in sight).
_PADDING = b" " * 65536
#: How far the `clock-skew` fault puts the gateway's clock ahead of the client's.
CLOCK_SKEW_FAULT_SECONDS = 20 * 60
# A body cut off mid-object: what a proxy that gave up half way sends.
MALFORMED_BODY = b'{"kind": "List", "apiVersion": "v3", "items": [{"kind": "WorkFlowTask", "metad'


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One authenticated request to an existing cluster."""

    request: web.Request
    state: SimulatorState
    cluster: Cluster
    single_item: bool  # an injected fault asks for the doc's single-object `items`


Operation = Callable[[ApiCall], Awaitable[web.Response]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


class ApiError(Exception):
    """An answer with a CCE error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_response(
    style: ResponseStyle,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return _json(error_body(style.error_style, status, code, message), status, headers)


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request_id = uuid.uuid4().hex
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # Unknown paths and methods: answer like the cloud, with a JSON body.
        state = request.app[STATE_KEY]
        response = _error_response(
            state.style_for(None), exc.status, default_error_code(exc.status), exc.reason
        )
    except Exception:
        logger.exception("simulator bug while serving %s %s", request.method, request.path)
        state = request.app[STATE_KEY]
        response = _error_response(
            state.style_for(None), 500, default_error_code(500), "internal error"
        )
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _fault_response(
    request: web.Request, state: SimulatorState, style: ResponseStyle, fault: Fault
) -> web.Response:
    if fault.kind == FaultKind.API_NOT_PUBLISHED:
        return _error_response(style, 404, NOT_PUBLISHED_CODE, NOT_PUBLISHED_MESSAGE)
    if fault.kind == FaultKind.CLOCK_SKEW:
        # As if the gateway's clock were 20 minutes ahead of the client's.
        now = state.wall_clock()
        signed = request.headers.get(DATE_HEADER) or time.strftime(DATE_FORMAT, time.gmtime(now))
        failure = signature_expired(signed, now + CLOCK_SKEW_FAULT_SECONDS)
        return _error_response(style, failure.status, failure.code, failure.message)
    if fault.kind == FaultKind.DROP:
        # Close the socket without an answer; aiohttp discards what we return.
        state.stats.dropped += 1
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)
    if fault.kind == FaultKind.THROTTLE:
        return _error_response(
            style,
            429,
            THROTTLE_CODE,
            THROTTLE_MESSAGE,
            headers={"Retry-After": str(fault.retry_after)},
        )
    if fault.kind == FaultKind.EMPTY_LIST:
        return web.json_response({"kind": "List", "apiVersion": "v3", "items": []})
    if fault.kind == FaultKind.MALFORMED:
        return web.Response(
            body=MALFORMED_BODY, status=200, content_type="application/json", charset="utf-8"
        )
    code = fault.error_code or default_error_code(fault.status)
    message = fault.error_msg or f"injected fault: HTTP {fault.status}"
    return _error_response(style, fault.status, code, message)


_BODY_FAULTS = frozenset({FaultKind.GZIP_BOMB, FaultKind.OVERSIZED, FaultKind.DRIP})


async def _body_fault(request: web.Request, fault: Fault) -> web.StreamResponse:
    """200 with a body that is too big, inflates too far, or never ends."""
    response = web.StreamResponse(status=200, headers={REQUEST_ID_HEADER: uuid.uuid4().hex})
    response.content_type = "application/json"
    with contextlib.suppress(ConnectionError):  # the client gave up, as it should
        await _write_body_fault(request, response, fault)
    return response


async def _write_body_fault(
    request: web.Request, response: web.StreamResponse, fault: Fault
) -> None:
    if fault.kind == FaultKind.GZIP_BOMB:
        body = gzip_bomb(fault.size)
        response.headers["Content-Encoding"] = "gzip"
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body)
    elif fault.kind == FaultKind.OVERSIZED:
        response.content_length = fault.size
        await response.prepare(request)
        await response.write(b'{"items": []')
        left = fault.size - 13
        while left > 0:
            piece = _PADDING[: min(left, len(_PADDING))]
            await response.write(piece)
            left -= len(piece)
        await response.write(b"}")
    else:  # drip: never complete; ends when the client goes away
        await response.prepare(request)
        await response.write(b"{")
        while True:
            await asyncio.sleep(fault.latency)
            await response.write(b" ")
    await response.write_eof()


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """`size` bytes of JSON (`{"items": [` + whitespace + `]}`, an empty list),
    gzipped: about a thousandth of that on the wire. Compressed piece by piece, so
    the simulator never holds the inflated form."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [compressor.compress(b'{"items": [')]
    left = size - 13
    while left > 0:
        piece = _PADDING[: min(left, len(_PADDING))]
        parts.append(compressor.compress(piece))
        left -= len(piece)
    parts.append(compressor.compress(b"]}"))
    parts.append(compressor.flush())
    return b"".join(parts)


def _api_route(
    operation: Operation, api: str = API_WORKFLOWS
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap one API operation in the cloud's request pipeline; `api` names it for
    faults that target one API only."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        project_id = request.match_info["project_id"]
        cluster_id = request.match_info["cluster_id"]
        cluster = state.clusters.get(cluster_id)
        stats = state.stats
        stats.requests += 1
        if cluster is not None:
            cluster.requests.record(state.clock.now(), api, operation.__name__)
        style = state.style_for(cluster)

        effects = state.faults.take(cluster_id, api)
        if effects.latency > 0:
            await asyncio.sleep(effects.latency)
        if effects.action is not None and effects.action.kind in _BODY_FAULTS:
            stats.statuses[200] += 1
            return await _body_fault(request, effects.action)
        if effects.action is not None:
            response = _fault_response(request, state, style, effects.action)
        else:
            response = await _authenticated(
                request, state, style, project_id, cluster, operation, effects.single_item
            )
        if effects.action is None or effects.action.kind != FaultKind.DROP:
            stats.statuses[response.status] += 1
            if cluster is not None:
                cluster.requests.statuses[response.status] += 1
        return response

    return handle


async def _authenticated(
    request: web.Request,
    state: SimulatorState,
    style: ResponseStyle,
    project_id: str,
    cluster: Cluster | None,
    operation: Operation,
    single_item: bool,
) -> web.Response:
    body = await request.read()
    failure = state.credentials.authenticate(
        method=request.method,
        raw_path=request.rel_url.raw_path,
        raw_query=request.rel_url.raw_query_string,
        headers=request.headers,
        body=body,
        project_id=project_id,
        wall_now=state.wall_clock(),
    )
    if failure is not None:
        state.stats.auth_failures += 1
        if cluster is not None:
            cluster.requests.auth_failures += 1
        return _error_response(style, failure.status, failure.code, failure.message)
    if cluster is None or cluster.project_id != project_id:
        return _error_response(
            style,
            404,
            CODE_NOT_FOUND,
            f"Resource not found: cluster {request.match_info['cluster_id']} "
            f"does not exist in project {project_id}",
        )
    try:
        return await operation(ApiCall(request, state, cluster, single_item))
    except ApiError as exc:
        return _error_response(style, exc.status, exc.code, exc.message)


def _find_workflow(call: ApiCall) -> Workflow:
    uid = call.request.match_info["workflow_id"]
    workflow = call.cluster.find_workflow(uid, call.state.clock.now())
    if workflow is None:
        raise ApiError(404, CODE_NOT_FOUND, f"Resource not found: upgrade workflow {uid}")
    return workflow


def _render(call: ApiCall, workflow: Workflow) -> dict[str, Any]:
    state = call.state
    style = state.style_for(call.cluster)
    return render_workflow(workflow, workflow.snapshot(state.clock.now()), style.timestamp_format)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise ApiError(400, CODE_INVALID_REQUEST, "Invalid request: the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, CODE_INVALID_REQUEST, "Invalid request: the body must be an object")
    return body


async def list_workflows(call: ApiCall) -> web.Response:
    now = call.state.clock.now()
    style = call.state.style_for(call.cluster)
    items = [
        render_workflow(workflow, workflow.snapshot(now), style.timestamp_format)
        for workflow in call.cluster.visible_workflows(now)
    ]
    shape = "single" if call.single_item else style.items_shape
    return _json(render_list(items, shape))


async def show_workflow(call: ApiCall) -> web.Response:
    return _json(_render(call, _find_workflow(call)))


async def create_workflow(call: ApiCall) -> web.Response:
    body = await _json_body(call.request)
    spec = body.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("targetVersion"), str):
        raise ApiError(400, CODE_INVALID_REQUEST, "Invalid request: spec.targetVersion is required")
    if spec.get("clusterID") not in (None, call.cluster.cluster_id):
        raise ApiError(
            400, CODE_INVALID_REQUEST, "Invalid request: spec.clusterID does not match the path"
        )
    cluster_version = spec.get("clusterVersion")
    if cluster_version is not None and not isinstance(cluster_version, str):
        raise ApiError(400, CODE_INVALID_REQUEST, "Invalid request: bad spec.clusterVersion")
    try:
        workflow = call.state.create_workflow_via_api(
            call.cluster, spec["targetVersion"], cluster_version
        )
    except ConflictError as exc:
        raise ApiError(400, CODE_INVALID_REQUEST, f"Invalid request: {exc}") from None
    return _json(_render(call, workflow), status=201)


async def cancel_workflow(call: ApiCall) -> web.Response:
    workflow = _find_workflow(call)
    body = await _json_body(call.request)
    status = body.get("status")
    if not isinstance(status, dict) or status.get("phase") != PHASE_CANCEL:
        raise ApiError(
            400,
            CODE_INVALID_REQUEST,
            'Invalid request: only {"status": {"phase": "Cancel"}} can be applied',
        )
    try:
        call.state.cancel_via_api(workflow)
    except ConflictError as exc:
        raise ApiError(400, CODE_INVALID_REQUEST, f"Invalid request: {exc}") from None
    return _json(_render(call, workflow))


# -- the read-only calls around an upgrade (see lifecycle.py) ---------------------------


def _now_and_stamp(call: ApiCall) -> tuple[float, lifecycle.Stamp]:
    style = call.state.style_for(call.cluster)
    return call.state.clock.now(), timestamp_formatter(style.timestamp_format)


async def list_prechecks(call: ApiCall) -> web.Response:
    now, stamp = _now_and_stamp(call)
    items = lifecycle.precheck_tasks(call.cluster, now, stamp)
    return _json({"kind": "List", "apiVersion": "v3", "metadata": {}, "items": items})


async def show_precheck(call: ApiCall) -> web.Response:
    now, stamp = _now_and_stamp(call)
    task_id = call.request.match_info["task_id"]
    task = lifecycle.find_precheck(call.cluster, task_id, now, stamp)
    if task is None:
        raise ApiError(404, CODE_NOT_FOUND, f"Resource not found: pre-check task {task_id}")
    return _json(task)


async def list_plans(call: ApiCall) -> web.Response:
    now, stamp = _now_and_stamp(call)
    return _json(lifecycle.plan_list(call.cluster, now, stamp, call.single_item))


async def show_window(call: ApiCall) -> web.Response:
    window = call.cluster.lifecycle.window
    # No window set: an empty object (every field of the SDK's answer is optional).
    return _json(lifecycle.render_window(window) if window is not None else {})


async def show_upgrade_info(call: ApiCall) -> web.Response:
    now, stamp = _now_and_stamp(call)
    return _json(lifecycle.render_upgrade_info(call.cluster, now, stamp))


async def list_snapshots(call: ApiCall) -> web.Response:
    now, stamp = _now_and_stamp(call)
    return _json(lifecycle.snapshot_list(call.cluster, now, stamp))


def build_app(state: SimulatorState) -> web.Application:
    """The simulator's whole HTTP surface: the API and the control API under /_sim/."""
    app = web.Application(middlewares=[request_id_middleware])
    app[STATE_KEY] = state
    app.router.add_get(API_PREFIX, _api_route(list_workflows))
    app.router.add_post(API_PREFIX, _api_route(create_workflow))
    app.router.add_get(API_PREFIX + "/{workflow_id}", _api_route(show_workflow))
    app.router.add_patch(API_PREFIX + "/{workflow_id}", _api_route(cancel_workflow))
    prechecks = CLUSTER_PREFIX + "/operation/precheck/tasks"
    app.router.add_get(prechecks, _api_route(list_prechecks, API_PRECHECK))
    app.router.add_get(prechecks + "/{task_id}", _api_route(show_precheck, API_PRECHECK))
    app.router.add_get(CLUSTER_PREFIX + "/upgradeplans", _api_route(list_plans, API_PLANS))
    app.router.add_get(CLUSTER_PREFIX + "/maintenancewindows", _api_route(show_window, API_WINDOW))
    app.router.add_get(
        CLUSTER_PREFIX + "/upgradeinfo", _api_route(show_upgrade_info, API_UPGRADE_INFO)
    )
    app.router.add_get(
        "/autopilot/v3.1/projects/{project_id}/clusters/{cluster_id}/operation/snapshot/tasks",
        _api_route(list_snapshots, API_SNAPSHOTS),
    )
    control.add_routes(app, state)
    add_identity_routes(app, state)
    return app
