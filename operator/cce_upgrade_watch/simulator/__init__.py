"""A simulator of the CCE Autopilot upgrade-workflow API (and the read-only calls
around an upgrade), served over real HTTP.

Same paths and shapes as the cloud, real authentication (token, or an
SDK-HMAC-SHA256 signature recomputed on the server), scripted scenarios driven
by a clock (injectable for tests), fault injection and request accounting
through a control API under `/_sim/`. No Kubernetes imports.

    from cce_upgrade_watch.simulator import SimulatorServer, ManualClock

    async with SimulatorServer("success", time_scale=10) as sim:
        ...  # point a client at sim.url; sim.state holds clusters, faults, stats

The full reference (scenario format, control API, built-ins, demo
credentials) is README.md beside this file.

Modules: `timeline` (pure task/phase logic), `scenarios` (files and built-ins),
`state` (clusters and workflows), `lifecycle` (pre-checks, plans, window,
versions and backups around an upgrade), `auth`, `faults`, `stats`, `render`
(JSON shapes), `app` (the API), `control` (`/_sim/`), `clock`, `server`,
`identity` and `identity_app` (STS, IAM, ECS metadata and pod identity, with
real ServiceAccount token verification).
"""

from cce_upgrade_watch.simulator.clock import Clock, ManualClock, SystemClock
from cce_upgrade_watch.simulator.scenarios import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    DEMO_TOKEN,
    CredentialSpec,
    Scenario,
    ScenarioError,
    builtin_scenario_names,
    load_scenario,
)
from cce_upgrade_watch.simulator.server import SimulatorServer, SimulatorThread
from cce_upgrade_watch.simulator.state import SimulatorState

__all__ = [
    "DEMO_ACCESS_KEY",
    "DEMO_CLUSTER_ID",
    "DEMO_PROJECT_ID",
    "DEMO_SECRET_KEY",
    "DEMO_TOKEN",
    "Clock",
    "CredentialSpec",
    "ManualClock",
    "Scenario",
    "ScenarioError",
    "SimulatorServer",
    "SimulatorState",
    "SimulatorThread",
    "SystemClock",
    "builtin_scenario_names",
    "load_scenario",
]
