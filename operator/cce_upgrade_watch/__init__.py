"""cce-upgrade-watch: a Kubernetes operator that watches CCE Autopilot cluster upgrades."""

__version__ = "0.1.0"
