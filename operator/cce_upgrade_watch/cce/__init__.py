"""The Huawei Cloud side: endpoints, authentication, models, client, errors.

Nothing here imports Kubernetes or kopf; the operator adapts these types at
its edge. One module per concern:

- `endpoints`: region or override -> base URL (`resolve_endpoint`); which hosts
  credentials may go to (`EndpointPolicy`).
- `signing`: SDK-HMAC-SHA256 as pure functions (the simulator verifies with them).
- `auth`: `TokenAuth`, `AkSkAuth` (`httpx.Auth`, passed per call).
- `models`, `timestamps`: tolerant parsing of the workflow list.
- `client`: `CceClient`, the one shared HTTP client, retries and limits.
- `views`: workflows as status-shaped dicts (`workflow_to_status_dict`).
- `errors`: typed failures, each with the condition `reason` it maps to.
"""
