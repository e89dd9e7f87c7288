"""The control API under `/_sim/`: JSON, no auth, for tests, the demo and benchmarks.

Endpoints (see the package README for the bodies):

    GET    /_sim/health
    GET    /_sim/state
    POST   /_sim/reset                                  {"scenario"?}
    POST   /_sim/time/advance                           {"seconds"}
    POST   /_sim/credentials                            {"projectId", "accessKey"?, ...}
    PUT    /_sim/style                                  {"itemsShape"?, "errorStyle"?, ...}
    GET    /_sim/clusters
    POST   /_sim/clusters                               {"clusters"?: [...], "count"?: n, ...}
    GET    /_sim/clusters/{cluster}
    PATCH  /_sim/clusters/{cluster}                     {"itemsShape"?, "createTimeline"?, ...}
    DELETE /_sim/clusters/{cluster}
    GET    /_sim/clusters/{cluster}/requests
    POST   /_sim/clusters/{cluster}/workflows           {"timeline"?, "targetVersion"?, ...}
    POST   /_sim/clusters/{cluster}/workflows/{uid|latest}/force  {"task", "status"} | {"phase"}
    GET    /_sim/faults
    POST   /_sim/faults                                 {"kind", "clusterId"?, "api"?, ...}
    DELETE /_sim/faults                                 ?clusterId=
    DELETE /_sim/faults/{id}
    GET    /_sim/stats                                  ?timestamps=1
    DELETE /_sim/stats

Errors answer 400 or 404 with `{"error": "..."}`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cce_upgrade_watch.simulator.faults import API_NAMES, FaultKind
from cce_upgrade_watch.simulator.render import render_workflow
from cce_upgrade_watch.simulator.scenarios import (
    DEFAULT_CLUSTER_VERSION,
    DEFAULT_CREATE_TIMELINE,
    DEFAULT_TARGET_VERSION,
    CredentialModel,
    CredentialSpec,
    ScenarioError,
    is_cluster_id,
    is_project_id,
    load_scenario,
    parse_timeline,
    scenario_from_data,
)
from cce_upgrade_watch.simulator.state import Cluster, ResponseStyle, SimulatorState, Workflow
from cce_upgrade_watch.simulator.timeline import TimelineSpec

PREFIX = "/_sim"
MAX_BULK_CLUSTERS = 100_000

_ITEMS_SHAPES = ("list", "single")
_ERROR_STYLES = ("cce", "status")
_TIMESTAMP_FORMATS = ("go", "rfc3339")


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ControlError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    """`body[key]` if present and of type `kind` (a bool is not an int here), else None."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ControlError(f"{key} must be of type {kind.__name__}")
    return value


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...]) -> Any:
    value = body.get(key)
    if value is not None and value not in choices:
        raise ControlError(f"{key} must be one of {list(choices)}")
    return value


class ControlApi:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    # ---- helpers ----------------------------------------------------------------------

    def _cluster(self, request: web.Request) -> Cluster:
        cluster_id = request.match_info["cluster_id"]
        cluster = self.state.clusters.get(cluster_id)
        if cluster is None:
            raise ControlError(f"no cluster {cluster_id}", 404)
        return cluster

    def _workflow(self, request: web.Request, cluster: Cluster) -> Workflow:
        uid = request.match_info["workflow_id"]
        now = self.state.clock.now()
        if uid == "latest":
            visible = cluster.visible_workflows(now)
            if not visible:
                raise ControlError(f"cluster {cluster.cluster_id} has no workflow yet", 404)
            return visible[-1]
        workflow = cluster.find_workflow(uid, now)
        if workflow is None:
            raise ControlError(f"no workflow {uid} on cluster {cluster.cluster_id}", 404)
        return workflow

    def _timeline(self, reference: Any, default: TimelineSpec | None = None) -> TimelineSpec:
        try:
            if reference is None and default is not None:
                return default
            if isinstance(reference, str):
                return self.state.timeline(reference)
            if isinstance(reference, dict):
                return parse_timeline(reference)
        except ScenarioError as exc:
            raise ControlError(str(exc)) from None
        raise ControlError("timeline must be a timeline name or an inline timeline object")

    def _render(self, cluster: Cluster, workflow: Workflow) -> dict[str, Any]:
        style = self.state.style_for(cluster)
        return render_workflow(
            workflow, workflow.snapshot(self.state.clock.now()), style.timestamp_format
        )

    def _cluster_summary(self, cluster: Cluster) -> dict[str, Any]:
        now = self.state.clock.now()
        visible = cluster.visible_workflows(now)
        return {
            "clusterId": cluster.cluster_id,
            "projectId": cluster.project_id,
            "version": cluster.current_version(now),
            "workflows": len(visible),
            "phase": visible[-1].snapshot(now).phase if visible else None,
            "requests": cluster.requests.count,
        }

    def _style_fields(self, body: dict[str, Any], base: ResponseStyle) -> ResponseStyle:
        def pick(key: str, choices: tuple[str, ...], current: Any) -> Any:
            return _choice(body, key, choices) if key in body else current

        return ResponseStyle(
            items_shape=pick("itemsShape", _ITEMS_SHAPES, base.items_shape),
            error_style=pick("errorStyle", _ERROR_STYLES, base.error_style),
            timestamp_format=pick("timestampFormat", _TIMESTAMP_FORMATS, base.timestamp_format),
        )

    # ---- whole simulator ------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return _reply({"status": "ok"})

    async def describe(self, request: web.Request) -> web.Response:
        state = self.state
        return _reply(
            {
                "now": state.clock.now(),
                "startedAt": state.started_at,
                "timeScale": state.time_scale,
                "scenario": state.scenario.name if state.scenario else None,
                "clusters": len(state.clusters),
                "credentials": state.credentials.describe(),
                "timelines": sorted(state.timelines),
                "style": state.style.to_json(),
                "faults": [fault.to_json() for fault in state.faults.all()],
                "stats": state.stats.to_json(),
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        body = await _body(request)
        scenario = body.get("scenario")
        try:
            if scenario is None:
                self.state.reset()
            elif isinstance(scenario, str):
                self.state.load(load_scenario(scenario), self.state.extra_credentials)
            elif isinstance(scenario, dict):
                self.state.load(scenario_from_data(scenario), self.state.extra_credentials)
            else:
                raise ControlError("scenario must be a name, a file path or an object")
        except ScenarioError as exc:
            raise ControlError(str(exc)) from None
        return _reply({"clusters": sorted(self.state.clusters), "now": self.state.clock.now()})

    async def advance(self, request: web.Request) -> web.Response:
        body = await _body(request)
        seconds = body.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ControlError("seconds must be a number, at least 0")
        self.state.clock.advance(float(seconds))
        return _reply({"now": self.state.clock.now()})

    async def add_credentials(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            model = CredentialModel.model_validate(body)
            self.state.add_credentials(
                CredentialSpec(
                    project_id=model.project_id,
                    access_key=model.access_key,
                    secret_key=model.secret_key,
                    security_token=model.security_token,
                    tokens=tuple(model.tokens),
                )
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ControlError(f"bad credentials: {exc}") from None
        return _reply({"credentials": self.state.credentials.describe()}, 201)

    async def set_style(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.state.style = self._style_fields(body, self.state.style)
        return _reply(self.state.style.to_json())

    # ---- clusters -----------------------------------------------------------------------

    async def list_clusters(self, request: web.Request) -> web.Response:
        return _reply(
            {"clusters": [self._cluster_summary(c) for c in self.state.clusters.values()]}
        )

    def _add_one(self, spec: dict[str, Any]) -> Cluster:
        """Add a cluster from a spec `_validate_spec` accepted."""
        cluster = self.state.add_cluster(
            cluster_id=spec.get("clusterId"),
            project_id=spec.get("projectId"),
            version=_optional(spec, "version", str) or DEFAULT_CLUSTER_VERSION,
            create_timeline=self._timeline(
                spec.get("createTimeline"), self.state.timeline(DEFAULT_CREATE_TIMELINE)
            ),
            style=self._style_fields(spec, ResponseStyle()),
        )
        start = spec.get("timeline")
        if start is not None:
            self.state.start_workflow(
                cluster,
                self._timeline(start),
                target_version=_optional(spec, "targetVersion", str) or DEFAULT_TARGET_VERSION,
            )
        return cluster

    async def add_clusters(self, request: web.Request) -> web.Response:
        """`{"clusters": [spec, ...]}` and/or `{"count": n, **spec}`: n clusters alike."""
        body = await _body(request)
        specs = body.get("clusters", [])
        if not isinstance(specs, list):
            raise ControlError("clusters must be a list")
        count = body.get("count", 0)
        if (
            not isinstance(count, int)
            or isinstance(count, bool)
            or not 0 <= count <= (MAX_BULK_CLUSTERS)
        ):
            raise ControlError(f"count must be an integer from 0 to {MAX_BULK_CLUSTERS}")
        if count and "clusterId" in body:
            raise ControlError("clusterId cannot be given with count")
        template = {key: value for key, value in body.items() if key not in ("clusters", "count")}
        # Validate everything first, so a bad request adds nothing.
        for spec in specs:
            self._validate_spec(spec)
        if count:
            self._validate_spec(template)
        ids = [spec["clusterId"] for spec in specs if spec.get("clusterId")]
        if len(set(ids)) != len(ids):
            raise ControlError("the same clusterId appears twice")
        added = [self._add_one(spec) for spec in specs]
        added += [self._add_one(template) for _ in range(count)]
        return _reply(
            {"clusters": [{"clusterId": c.cluster_id, "projectId": c.project_id} for c in added]},
            201,
        )

    def _validate_spec(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ControlError("each cluster must be an object")
        known = {
            "clusterId",
            "projectId",
            "version",
            "createTimeline",
            "timeline",
            "targetVersion",
            "itemsShape",
            "errorStyle",
            "timestampFormat",
        }
        unknown = set(spec) - known
        if unknown:
            raise ControlError(f"unknown cluster fields {sorted(unknown)}; known: {sorted(known)}")
        cluster_id = _optional(spec, "clusterId", str)
        project_id = _optional(spec, "projectId", str)
        if cluster_id is not None and not is_cluster_id(cluster_id):
            raise ControlError(f"clusterId {cluster_id!r} is not a lowercase UUID")
        if cluster_id in self.state.clusters:
            raise ControlError(f"cluster {cluster_id} already exists")
        if project_id is not None and not is_project_id(project_id):
            raise ControlError(f"projectId {project_id!r} is not 32 lowercase hex characters")
        for key in ("version", "targetVersion"):
            _optional(spec, key, str)
        self._style_fields(spec, ResponseStyle())
        for key in ("createTimeline", "timeline"):
            if spec.get(key) is not None:
                self._timeline(spec[key])

    async def show_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        now = self.state.clock.now()
        return _reply(
            {
                **self._cluster_summary(cluster),
                "initialVersion": cluster.version,
                "createTimeline": cluster.create_timeline.name,
                "style": cluster.style.to_json(),
                "items": [self._render(cluster, w) for w in cluster.visible_workflows(now)],
                "scheduled": len(cluster.workflows) - len(cluster.visible_workflows(now)),
                "requestLog": cluster.requests.to_json(with_timestamps=False),
            }
        )

    async def update_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        body = await _body(request)
        cluster.style = self._style_fields(body, cluster.style)
        if "createTimeline" in body:
            cluster.create_timeline = self._timeline(body["createTimeline"])
        if "version" in body:
            cluster.version = _optional(body, "version", str) or cluster.version
        return _reply({**self._cluster_summary(cluster), "style": cluster.style.to_json()})

    async def delete_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        del self.state.clusters[cluster.cluster_id]
        return _reply({"deleted": cluster.cluster_id})

    async def cluster_requests(self, request: web.Request) -> web.Response:
        return _reply(self._cluster(request).requests.to_json())

    async def start_workflow(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        body = await _body(request)
        spec = self._timeline(body.get("timeline"), cluster.create_timeline)
        workflow = self.state.start_workflow(
            cluster,
            spec,
            target_version=_optional(body, "targetVersion", str) or DEFAULT_TARGET_VERSION,
            cluster_version=_optional(body, "clusterVersion", str),
            uid=_optional(body, "uid", str),
        )
        return _reply(self._render(cluster, workflow), 201)

    async def force(self, request: web.Request) -> web.Response:
        cluster = self._cluster(request)
        workflow = self._workflow(request, cluster)
        body = await _body(request)
        task = _optional(body, "task", str)
        status = _optional(body, "status", str)
        phase = _optional(body, "phase", str)
        if (task is None) != (status is None) or (task is None and phase is None):
            raise ControlError('give {"task": T, "status": S} and/or {"phase": P}')
        if task is not None and status is not None:
            try:
                self.state.force_task(workflow, task, status)
            except ValueError as exc:
                raise ControlError(str(exc)) from None
        if phase is not None:
            self.state.force_phase(workflow, phase)
        return _reply(self._render(cluster, workflow))

    # ---- faults and stats ------------------------------------------------------------------

    async def list_faults(self, request: web.Request) -> web.Response:
        return _reply({"faults": [fault.to_json() for fault in self.state.faults.all()]})

    async def add_fault(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            kind = FaultKind(str(body.get("kind")))
        except ValueError:
            raise ControlError(f"kind must be one of {[k.value for k in FaultKind]}") from None
        options: dict[str, Any] = {
            "cluster_id": _optional(body, "clusterId", str),
            "remaining": _optional(body, "count", int),
            "api": _choice(body, "api", API_NAMES),
        }
        if kind == FaultKind.ERROR:
            status = _optional(body, "status", int) or 503
            if not 400 <= status <= 599:
                raise ControlError("status must be an HTTP error status (400-599)")
            options.update(
                status=status,
                error_code=_optional(body, "errorCode", str),
                error_msg=_optional(body, "errorMsg", str),
            )
        elif kind == FaultKind.THROTTLE:
            retry_after = body.get("retryAfter", 1)
            if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0:
                raise ControlError("retryAfter must be a whole number of seconds")
            options["retry_after"] = retry_after
        elif kind == FaultKind.LATENCY:
            seconds = body.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ControlError("latency needs seconds (a number, at least 0)")
            options["latency"] = float(seconds)
        elif kind == FaultKind.DRIP:
            seconds = body.get("seconds", 1.0)
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
                raise ControlError("drip seconds must be a number above 0")
            options["latency"] = float(seconds)
        elif kind in (FaultKind.GZIP_BOMB, FaultKind.OVERSIZED):
            size = body.get("bytes", 256 * 1024 * 1024)
            if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 2**32:
                raise ControlError("bytes must be a whole number from 16 to 4 GiB")
            options["size"] = size
        try:
            fault = self.state.faults.add(kind, **options)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        return _reply(fault.to_json(), 201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        cluster_id = request.query.get("clusterId")
        return _reply({"cleared": self.state.faults.clear(cluster_id)})

    async def delete_fault(self, request: web.Request) -> web.Response:
        fault_id = request.match_info["fault_id"]
        if not self.state.faults.remove(fault_id):
            raise ControlError(f"no fault {fault_id}", 404)
        return _reply({"cleared": 1})

    async def stats(self, request: web.Request) -> web.Response:
        with_timestamps = request.query.get("timestamps") in ("1", "true")
        return _reply(
            {
                "global": self.state.stats.to_json(),
                "clusters": {
                    cluster_id: cluster.requests.to_json(with_timestamps=with_timestamps)
                    for cluster_id, cluster in self.state.clusters.items()
                    if cluster.requests.by_api
                },
            }
        )

    async def clear_stats(self, request: web.Request) -> web.Response:
        self.state.clear_stats()
        return _reply({"cleared": True})


def _guarded(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def guarded(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ControlError as exc:
            return _reply({"error": str(exc)}, exc.status)

    return guarded


def add_routes(app: web.Application, state: SimulatorState) -> None:
    api = ControlApi(state)
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
        ("GET", "/health", api.health),
        ("GET", "/state", api.describe),
        ("POST", "/reset", api.reset),
        ("POST", "/time/advance", api.advance),
        ("POST", "/credentials", api.add_credentials),
        ("PUT", "/style", api.set_style),
        ("GET", "/clusters", api.list_clusters),
        ("POST", "/clusters", api.add_clusters),
        ("GET", "/clusters/{cluster_id}", api.show_cluster),
        ("PATCH", "/clusters/{cluster_id}", api.update_cluster),
        ("DELETE", "/clusters/{cluster_id}", api.delete_cluster),
        ("GET", "/clusters/{cluster_id}/requests", api.cluster_requests),
        ("POST", "/clusters/{cluster_id}/workflows", api.start_workflow),
        ("POST", "/clusters/{cluster_id}/workflows/{workflow_id}/force", api.force),
        ("GET", "/faults", api.list_faults),
        ("POST", "/faults", api.add_fault),
        ("DELETE", "/faults", api.clear_faults),
        ("DELETE", "/faults/{fault_id}", api.delete_fault),
        ("GET", "/stats", api.stats),
        ("DELETE", "/stats", api.clear_stats),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, _guarded(handler))
