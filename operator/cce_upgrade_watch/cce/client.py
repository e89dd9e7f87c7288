"""`CceClient`: the one HTTP client the whole process uses to call CCE.

Create it once (at operator startup) and share it: it owns a single connection
pool (`http11.Http11Sender`, or aiohttp's for a proxied host, see `senders.py`;
requests, answers and auth are httpx's types), so connections are kept alive
across every watched cluster of the same region, and one set of slots bounds
the requests in flight for all callers together, shared fairly between
tenants (`slots.FairSlots`: a caller names its tenant, the watch's namespace,
and no tenant holds more than half the slots while another is active).
Credentials and endpoint are per call, because every watched object has its
own.

Nothing a server sends can exhaust the process: each attempt has an overall
deadline (a server that drips a byte every few seconds never resets it), and
bodies are read under a hard cap, on the wire and after decompression
(`bodies.py`); an oversized answer is `InvalidResponse`.

Failures become the typed exceptions of `errors.py`. GET requests are retried
when throttled or when the API is unavailable, with exponential backoff and
full jitter, honouring `Retry-After`; other methods are never retried, since
the first attempt may have taken effect. When the server asks for a longer
wait than the policy allows, the error is raised at once with `retry_after` so
the caller can schedule its next poll instead of blocking a slot.

Metrics are recorded through the optional `on_request` hook, so this module
needs no metrics library.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from cce_upgrade_watch import __version__
from cce_upgrade_watch.cce.auth import redact
from cce_upgrade_watch.cce.bodies import DEFAULT_MAX_BODY_BYTES
from cce_upgrade_watch.cce.endpoints import EndpointPolicy, resolve_endpoint
from cce_upgrade_watch.cce.errors import (
    ApiUnavailable,
    CceApiError,
    ClockSkew,
    ClusterNotFound,
    CredentialsRejected,
    EndpointNotPublished,
    Forbidden,
    InvalidResponse,
    RequestRejected,
    Throttled,
    WorkflowParseError,
    one_line,
)
from cce_upgrade_watch.cce.http11 import Http11Sender
from cce_upgrade_watch.cce.models import UpgradeWorkflow, Workflows, parse_workflow_list
from cce_upgrade_watch.cce.senders import (
    AnswerTooLarge,
    ConnectionFailed,
    HttpxSender,
    NoAnswerInTime,
    Sender,
    Undecodable,
)
from cce_upgrade_watch.cce.slots import FairSlots

log = logging.getLogger(__name__)

USER_AGENT = f"cce-upgrade-watch/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
DEFAULT_MAX_IN_FLIGHT = 32
#: Bytes of list answers remembered (the last one per cluster URL) to skip parsing
#: an unchanged one; the least recently used go first. Bounded by bytes, not by
#: count, since each answer may be up to the body cap.
MAX_REMEMBERED_BYTES = 64 * 1024 * 1024

#: Called once per HTTP attempt: (operation, status, seconds). `status` is the
#: HTTP status code as a string, or "timeout" / "network" when no answer came.
RequestObserver = Callable[[str, str, float], None]

LIST_WORKFLOWS = "list upgrade workflows"
CREATE_WORKFLOW = "create upgrade workflow"
CANCEL_WORKFLOW = "cancel upgrade workflow"


@dataclass(frozen=True)
class RetryPolicy:
    """How GET requests are retried when throttled or when the API is unavailable.

    The n-th retry waits a uniformly random time in [0, min(max_delay,
    base_delay * 2**(n-1))] ("full jitter", so many clients retrying together
    spread out), or the server's `Retry-After` when that is longer. A
    `Retry-After` beyond `max_delay` ends the retries at once.
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, retry: int, uniform: Callable[[float, float], float]) -> float:
        """The jittered delay before retry number `retry` (1-based)."""
        return uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))


@functools.lru_cache(maxsize=4096)
def _resolved_endpoint(region: str | None, endpoint: str | None) -> str:
    """`resolve_endpoint`, remembered: every poll of a watch asks the same (it parses
    and checks a URL, a tenth of a millisecond); an invalid one raises, uncached."""
    return resolve_endpoint(region=region, endpoint=endpoint)


@functools.lru_cache(maxsize=16384)
def _parsed_list_url(url: str) -> httpx.URL:
    """A workflow list's parsed URL (immutable, so shared): a request built from a
    string costs ~90 us more (httpx parses it character by character), on every
    poll. Only the list URLs, which every poll calls: the lifecycle calls are far
    rarer, and their six URLs per watch would push the list URLs out of the cache
    (~0.9 KiB each) at a few thousand watches."""
    return httpx.URL(url)


def workflows_path(project_id: str, cluster_id: str) -> str:
    """The URL path of a cluster's upgrade-workflow collection."""
    if not project_id or not cluster_id:
        raise ValueError("project_id and cluster_id must not be empty")
    # Quoted with nothing safe: an id must not be able to add path segments.
    return (
        f"/autopilot/v3/projects/{quote(project_id, safe='')}"
        f"/clusters/{quote(cluster_id, safe='')}/operation/upgradeworkflows"
    )


class CceClient:
    """Calls the CCE Autopilot upgrade-workflow API; safe to share between tasks.

    Use as `async with CceClient() as client: ...`, or call `aclose()`.
    `transport` is for tests and special networking only.
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry: RetryPolicy | None = None,
        on_request: RequestObserver | None = None,
        user_agent: str = USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
        max_response_bytes: int = DEFAULT_MAX_BODY_BYTES,
        deadline: float | None = None,
        max_remembered_bytes: int = MAX_REMEMBERED_BYTES,
        endpoint_policy: EndpointPolicy | None = None,
    ) -> None:
        """`deadline`: seconds one attempt may take in all, sending and reading
        (default: the read timeout); `max_response_bytes`: the body cap."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        timeout = httpx.Timeout(timeout)
        self._deadline = deadline if deadline is not None else (timeout.read or 15.0)
        if self._deadline <= 0:
            raise ValueError("deadline must be positive")
        # As many connections as requests may be in flight, all kept alive.
        self._sender: Sender = (
            Http11Sender(timeout, max_in_flight, max_response_bytes)
            if transport is None
            else HttpxSender(transport, timeout, max_in_flight, max_response_bytes)
        )
        self._headers = {
            "User-Agent": user_agent,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._slots = FairSlots(max_in_flight)
        # The last list answer of each URL, raw and parsed, least recently used first.
        self._last_lists: OrderedDict[str, tuple[bytes, Workflows]] = OrderedDict()
        self._remembered_bytes = 0
        self._max_remembered_bytes = max_remembered_bytes
        self._retry = retry or RetryPolicy()
        self._on_request = on_request
        self._sleep = sleep
        self._uniform = uniform
        # The hosts credentials may go to (None: any valid endpoint, for `check`,
        # where the person running it chose the endpoint and owns the credentials).
        self._endpoint_policy = endpoint_policy

    def _endpoint(self, region: str | None, endpoint: str | None) -> str:
        """The base URL to call, refused (`EndpointNotAllowed`) before a byte is
        sent when the policy does not allow its host."""
        base = _resolved_endpoint(region, endpoint)
        if self._endpoint_policy is not None:
            self._endpoint_policy.check(base)
        return base

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def list_upgrade_workflows(
        self,
        project_id: str,
        cluster_id: str,
        *,
        auth: httpx.Auth,
        endpoint: str | None = None,
        region: str | None = None,
        tenant: str = "",
    ) -> Workflows:
        """Every upgrade workflow the cluster has had, in the order the API sent them;
        `.dropped` names the informational fields that could not be read.

        `endpoint` (an override) wins over `region`; one of them is required.
        `tenant` (the watch's namespace) is whose share of the slots the call uses.
        Raises a `CceApiError` subclass, or `EndpointError` for a bad endpoint.
        """
        url = self._endpoint(region, endpoint) + workflows_path(project_id, cluster_id)
        response = await self._call(
            LIST_WORKFLOWS, "GET", _parsed_list_url(url), auth=auth, tenant=tenant
        )
        # An unchanged answer (the usual one) is not parsed again: the same bytes
        # give the same workflows, as the same (frozen) objects, so a caller can
        # tell "nothing changed" by identity.
        last = self._last_lists.get(url)
        if last is not None and last[0] == response.content:
            self._last_lists.move_to_end(url)
            return Workflows(last[1], last[1].dropped)
        workflows = _parse_list(LIST_WORKFLOWS, response, auth)
        self._remember(url, response.content, workflows)
        return Workflows(workflows, workflows.dropped)

    def _remember(self, url: str, content: bytes, workflows: Workflows) -> None:
        old = self._last_lists.pop(url, None)
        if old is not None:
            self._remembered_bytes -= len(old[0])
        if len(content) > self._max_remembered_bytes:
            return
        while self._last_lists and self._remembered_bytes + len(content) > (
            self._max_remembered_bytes
        ):
            _, (evicted, _) = self._last_lists.popitem(last=False)
            self._remembered_bytes -= len(evicted)
        self._last_lists[url] = (content, workflows)
        self._remembered_bytes += len(content)

    @property
    def remembered_bytes(self) -> int:
        """Bytes of raw answers held to skip re-parsing (bounded by `max_remembered_bytes`)."""
        return self._remembered_bytes

    async def create_upgrade_workflow(
        self,
        project_id: str,
        cluster_id: str,
        *,
        cluster_version: str,
        target_version: str,
        auth: httpx.Auth,
        endpoint: str | None = None,
        region: str | None = None,
    ) -> UpgradeWorkflow:
        """Start an upgrade workflow (POST; never retried)."""
        url = self._endpoint(region, endpoint) + workflows_path(project_id, cluster_id)
        body = {
            "kind": "WorkFlowTask",
            "apiVersion": "v3",
            "spec": {
                "clusterID": cluster_id,
                "clusterVersion": cluster_version,
                "targetVersion": target_version,
            },
        }
        response = await self._call(CREATE_WORKFLOW, "POST", url, auth=auth, json_body=body)
        return _parse_one(CREATE_WORKFLOW, response, auth)

    async def cancel_upgrade_workflow(
        self,
        project_id: str,
        cluster_id: str,
        workflow_id: str,
        *,
        auth: httpx.Auth,
        endpoint: str | None = None,
        region: str | None = None,
    ) -> UpgradeWorkflow:
        """Cancel a workflow (PATCH; never retried). CCE refuses while a task runs."""
        url = (
            self._endpoint(region, endpoint)
            + workflows_path(project_id, cluster_id)
            + "/"
            + quote(workflow_id, safe="")
        )
        body = {"status": {"phase": "Cancel"}}
        response = await self._call(CANCEL_WORKFLOW, "PATCH", url, auth=auth, json_body=body)
        return _parse_one(CANCEL_WORKFLOW, response, auth)

    async def get_object(
        self,
        operation: str,
        path: str,
        *,
        auth: httpx.Auth,
        endpoint: str | None = None,
        region: str | None = None,
        tenant: str = "",
    ) -> dict[str, Any]:
        """GET `path` (already quoted) with the same signing, retries, errors, body
        cap and fair slots (`tenant`) as the workflow list: the answer as a decoded
        JSON object.

        A 2xx that is not a JSON object, or that carries an error body, is
        `InvalidResponse`; other failures raise as `list_upgrade_workflows` does.
        """
        url = _resolved_endpoint(region, endpoint) + path
        response = await self._call(operation, "GET", url, auth=auth, tenant=tenant)
        body = _json_or_none(response)
        if not isinstance(body, dict):
            raise _make(
                InvalidResponse, "the response is not a JSON object", operation, response, auth
            )
        if _error_fields(body)[0]:
            # No answer of these calls has an error code: a 2xx with one is not to be trusted.
            raise _make(
                InvalidResponse, "an error body in a success response", operation, response, auth
            )
        return body

    # -- one call, with retries -------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        url: str | httpx.URL,
        *,
        auth: httpx.Auth,
        json_body: dict[str, Any] | None = None,
        tenant: str = "",
    ) -> httpx.Response:
        retryable_method = method == "GET"
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(
                    operation, method, url, auth=auth, json_body=json_body, tenant=tenant
                )
            except (Throttled, ApiUnavailable) as exc:
                if not retryable_method or attempt >= self._retry.attempts:
                    raise
                delay = self._retry.backoff(attempt, self._uniform)
                if exc.retry_after is not None:
                    if exc.retry_after > self._retry.max_delay:
                        raise  # the caller reschedules rather than hold on this long
                    delay = max(delay, exc.retry_after)
                log.info(
                    "%s failed (%s), retry %d of %d in %.2fs",
                    operation,
                    exc.reason,
                    attempt,
                    self._retry.attempts - 1,
                    delay,
                )
                await self._sleep(delay)

    async def _attempt(
        self,
        operation: str,
        method: str,
        url: str | httpx.URL,
        *,
        auth: httpx.Auth,
        json_body: dict[str, Any] | None,
        tenant: str,
    ) -> httpx.Response:
        # The request is built and signed inside the slot, so time spent waiting for
        # one does not age the X-Sdk-Date the server checks.
        await self._slots.acquire(tenant)  # (not `async with`: 2 us less per request)
        try:
            request = httpx.Request(
                method,
                url,
                content=json.dumps(json_body).encode() if json_body is not None else None,
                headers=self._headers,
            )
            started = time.monotonic()
            status = "network"
            try:
                # The whole attempt, reading included, within one deadline: the
                # sender's read timeout is per read, which a dripping server resets.
                async with asyncio.timeout(self._deadline):
                    response = await self._send_authenticated(request, auth)
                status = str(response.status_code)
            except (NoAnswerInTime, TimeoutError):
                status = "timeout"
                raise ApiUnavailable(
                    f"no complete answer within {self._deadline:g}s", operation=operation
                ) from None
            except AnswerTooLarge as exc:
                status = "too_large"
                raise InvalidResponse(str(exc), operation=operation) from None
            except Undecodable as exc:
                raise InvalidResponse(
                    f"the response could not be decoded ({exc})", operation=operation
                ) from None
            except ConnectionFailed as exc:
                # The detail (address, port, certificate error) goes to our log
                # only: a tenant must not learn what listens where inside.
                log.warning("%s: %s: %s", operation, exc.kind, redact(str(exc), auth))
                raise ApiUnavailable(exc.kind, operation=operation) from None
            finally:
                self._observe(operation, status, time.monotonic() - started)
        finally:
            self._slots.release(tenant)
        if response.is_success:
            return response
        raise _error_for(operation, response, auth)

    async def _send_authenticated(self, request: httpx.Request, auth: httpx.Auth) -> httpx.Response:
        """Send through `auth`'s flow, as httpx's client does (a flow may answer a
        challenge with another request; ours sign once)."""
        flow = auth.async_auth_flow(request)
        try:
            request = await flow.__anext__()
            while True:
                response = await self._sender.send(request)
                try:
                    request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    def _observe(self, operation: str, status: str, seconds: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(operation, status, seconds)
        except Exception:  # a metrics bug must not fail the call
            log.exception("the on_request hook failed")


# -- parsing --------------------------------------------------------------------


def _parse_list(operation: str, response: httpx.Response, auth: httpx.Auth) -> Workflows:
    body = _json_or_none(response)
    if isinstance(body, dict) and "items" not in body and _error_fields(body)[0]:
        # A 2xx carrying an error body cannot be trusted to mean "no workflows".
        raise _make(
            InvalidResponse, "an error body in a success response", operation, response, auth
        )
    try:
        parsed = parse_workflow_list(response.content)
    except WorkflowParseError as exc:
        raise _make(InvalidResponse, str(exc), operation, response, auth) from None
    return Workflows(parsed.items, parsed.dropped)


def _parse_one(operation: str, response: httpx.Response, auth: httpx.Auth) -> UpgradeWorkflow:
    body = _json_or_none(response)
    if not isinstance(body, dict):
        raise _make(InvalidResponse, "the response is not a JSON object", operation, response, auth)
    try:
        items = parse_workflow_list({"items": body}).items
    except WorkflowParseError as exc:
        raise _make(InvalidResponse, str(exc), operation, response, auth) from None
    return items[0] if items else UpgradeWorkflow()


# -- errors ---------------------------------------------------------------------

_STATUS_ERRORS: dict[int, tuple[type[CceApiError], str]] = {
    401: (CredentialsRejected, "credentials rejected"),
    403: (Forbidden, "forbidden"),
    404: (ClusterNotFound, "cluster not found"),
    429: (Throttled, "throttled"),
}


# The API gateway answers for the cloud service when the request never reaches it,
# with codes of its own (the region's gateway says `APIGW.`, dedicated gateways
# `APIG.`), and the same body shape as CCE. Codes and texts from Huawei Cloud's
# "API Gateway > Error Codes" page (support.huaweicloud.com/intl/en-us/usermanual-apig/
# apig_03_0048.html) and "API Request Signing Guide > FAQs" (support.huaweicloud.com/
# intl/en-us/devg-apisign/api-sign-0003.html); the IAM form of the expired
# signature as the gateway sends it is quoted in huaweicloud/huaweicloud-sdk-java-v3#44:
#   404 APIGW.0101 "The API does not exist or has not been published in the environment."
#   401 APIGW.0301 "Incorrect IAM authentication information: calc aksk signature fail:
#       signature expired, signature time:20211217T064303Z,server time:20211217T065804Z"
#   401 APIGW.0303 "Incorrect app authentication information: signature expired, ..."
_GATEWAY_NOT_PUBLISHED = re.compile(r"^APIGW?\.0101$")
_SIGNATURE_EXPIRED = re.compile(
    r"signature expired|x-sdk-date\b.*\b(out of range|expired)", re.IGNORECASE
)
_SIGNATURE_TIMES = re.compile(
    r"signature time:\s*(\d{8}T\d{6}Z)\s*,\s*server time:\s*(\d{8}T\d{6}Z)", re.IGNORECASE
)


def _error_for(operation: str, response: httpx.Response, auth: httpx.Auth) -> CceApiError:
    code = response.status_code
    error_code, error_msg, message = _error_fields(_json_or_none(response))
    if code == 404 and error_code is not None and _GATEWAY_NOT_PUBLISHED.match(error_code):
        return _make(
            EndpointNotPublished,
            "no such API at this endpoint (the API gateway has not published it here): "
            "check the region or the endpoint",
            operation,
            response,
            auth,
        )
    said = " ".join(text for text in (error_msg, message) if text)
    if code == 401 and _SIGNATURE_EXPIRED.search(said):
        return _clock_skew(operation, response, auth, said)
    if code in _STATUS_ERRORS:
        cls, detail = _STATUS_ERRORS[code]
    elif code >= 500 or code == 408:
        cls, detail = ApiUnavailable, "the API is unavailable"
    elif 400 <= code < 500:
        cls, detail = RequestRejected, "the request was refused"
    else:  # 1xx or 3xx: a redirect is never part of this API
        cls, detail = InvalidResponse, "unexpected status"
    return _make(cls, detail, operation, response, auth)


def _clock_skew(
    operation: str, response: httpx.Response, auth: httpx.Auth, said: str
) -> CceApiError:
    """The operator's clock, not the key: say by how much, in whole minutes (a
    message that changed on every try would be a status write on every poll),
    and leave the server's per-request timestamps out."""
    skew = ""
    times = _SIGNATURE_TIMES.search(said)
    if times is not None:
        try:
            signed, server = (datetime.strptime(t, "%Y%m%dT%H%M%SZ") for t in times.groups())
            minutes = round((server - signed).total_seconds() / 60)
            if minutes:
                direction = "behind" if minutes > 0 else "ahead of"
                skew = f" (about {abs(minutes)} minutes {direction} the server's)"
        except ValueError:
            pass
    detail = (
        f"the request's X-Sdk-Date is out of the server's range: the operator's clock is "
        f"off{skew}; fix the time (NTP) of the node the operator runs on"
    )
    error = _make(ClockSkew, detail, operation, response, auth)
    if error.error_msg:
        error.error_msg = one_line(_SIGNATURE_TIMES.sub("", error.error_msg).rstrip(" ,"))
        error.message = None
        error.args = (error._render(),)
    return error


def _make(
    cls: type[CceApiError],
    detail: str,
    operation: str,
    response: httpx.Response,
    auth: httpx.Auth,
) -> CceApiError:
    error_code, error_msg, message = _error_fields(_json_or_none(response))

    def scrub(text: str | None) -> str | None:
        # The server may echo what it was sent; nothing secret leaves through its text.
        return redact(text, auth) if text else text

    return cls(
        scrub(detail) or "",
        operation=operation,
        status_code=response.status_code,
        error_code=scrub(error_code),
        error_msg=scrub(error_msg),
        message=scrub(message),
        request_id=response.headers.get("X-Request-Id"),
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(error_code, error_msg, message) from either body style CCE uses.

    Documented: `{"error_code", "error_msg"}`. Seen in practice: a Kubernetes
    Status-like body with `errorCode`, `errorMessage` and `message`. IAM and the
    API gateway nest theirs: `{"error": {"code", "message"}}`.
    """
    if not isinstance(body, dict):
        return None, None, None
    error = body.get("error")
    nested: dict[str, Any] = error if isinstance(error, dict) else {}
    code = (
        _text(body.get("error_code")) or _text(body.get("errorCode")) or _text(nested.get("code"))
    )
    msg = (
        _text(body.get("error_msg"))
        or _text(body.get("errorMessage"))
        or _text(nested.get("message"))
    )
    message = _text(body.get("message"))
    if msg is None:
        msg, message = message, None
    return code, msg, message


def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value)
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)
