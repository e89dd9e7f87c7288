"""The Huawei Cloud side: endpoints, authentication, models, client, errors.

Nothing here imports Kubernetes; the operator adapts these types at its edge.
"""
