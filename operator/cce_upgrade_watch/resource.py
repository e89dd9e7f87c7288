"""The names of the custom resource, fixed by the contract in the design."""

from __future__ import annotations

GROUP = "cce.upgradewatch.io"
VERSION = "v1alpha1"
PLURAL = "cceupgradewatches"
KIND = "CceUpgradeWatch"

#: Changing this annotation's value asks for an immediate poll.
POLL_NOW_ANNOTATION = f"{GROUP}/poll-now"
#: kopf's own bookkeeping lives under our prefix, in annotations, never in status.
KOPF_PREFIX = GROUP
FINALIZER = f"{GROUP}/finalizer"
