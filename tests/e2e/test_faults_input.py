"""Bad input the operator must survive: Secrets it cannot use, beside a healthy watch.

Invalid specs are the API server's to reject (the CRD table in
test_operator_behaviour.py); an object that slipped past an older CRD is refused
by the operator's own spec parsing (tests/unit/reliability/test_spec_defence.py).
Here: Secrets with a missing key, an empty or blank value, the wrong key names or a
token no header can carry. Each is `CredentialsNotFound` with a message naming the
key and never a value, nothing is sent to the cloud, and a healthy watch in the
same namespace keeps its poll schedule throughout.
"""

from __future__ import annotations

import itertools
import json
import time

from tests.support.reliability import (
    measured,
    request_count,
    request_times,
    wait_for_requests,
)
from tests.support.world import World

STEP = 1000.0
AK = "BADINPUTAK9F3K2M7Q"
SK = "bad-input-secret-key-7c1e5a"
TOKEN = "bad-input-iam-token-43d9b0"
VALUES = (AK, SK, TOKEN)

#: name -> (Secret stringData, words the message must contain)
BAD_SECRETS: dict[str, tuple[dict[str, str], list[str]]] = {
    "missing-key": ({"accessKey": AK}, ["'secretKey' is missing"]),
    "empty-value": ({"accessKey": AK, "secretKey": ""}, ["'secretKey' is empty"]),
    "blank-value": ({"accessKey": "  \n", "secretKey": SK}, ["'accessKey' is empty"]),
    "wrong-names": (
        {"access_key": AK, "secret_key": SK},
        ["'accessKey' is missing", "'secretKey' is missing", "'access_key'", "'secret_key'"],
    ),
    "empty-token": ({"token": ""}, ["'accessKey' is missing", "'token'"]),
    "unprintable-token": ({"token": TOKEN + "\x07"}, ["key 'token'", "characters an HTTP header"]),
}


def secret(world: World, name: str, data: dict[str, str]) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": world.namespace},
        "stringData": data,
    }
    world.plane.apply(json.dumps(manifest))


def test_unusable_secrets_name_the_key_and_spare_the_others(world: World) -> None:
    healthy = world.sim.add_cluster()
    world.sim.start_workflow(healthy, {"steps": [{"task": "PreCheck", "wait": STEP}]})
    world.create_secret()
    world.create_watch("healthy", healthy, activePollInterval="5s")
    world.wait_condition("healthy", "Synced", "True", "PollSucceeded")
    synced_before = world.condition("healthy", "Synced")
    started = time.monotonic()
    requests_before = request_count(world.sim, healthy)

    target = world.sim.add_cluster()  # the bad watches must never reach it
    for name, (data, _) in BAD_SECRETS.items():
        secret(world, f"creds-{name}", data)
        world.create_watch(name, target, credentialsSecretRef={"name": f"creds-{name}"})
    for name, (_, words) in BAD_SECRETS.items():
        condition = world.wait_condition(name, "Synced", "False", "CredentialsNotFound")
        for word in words:
            assert word in condition["message"], (name, condition["message"])
        assert f"'creds-{name}'" in condition["message"]
        world.wait_condition(name, "Stalled", "True", "CredentialsNotFound")
        events = world.wait_events(name, 1)
        assert [(kind, why) for kind, why, _ in events] == [("Warning", "PollFailed")], events
        shown = json.dumps(world.get(name)) + json.dumps(world.events(name))
        for value in VALUES:
            assert value not in shown, (name, value)
    # Three more polls of the healthy watch (15 s): every bad watch polls again
    # meanwhile (pollInterval 10s) and stays in its one failure episode.
    failing_since = {name: world.condition(name, "Synced") for name in BAD_SECRETS}
    wait_for_requests(world.sim, healthy, request_count(world.sim, healthy) + 3)
    for name in BAD_SECRETS:
        assert world.condition(name, "Synced") == failing_since[name], name
        assert [why for _, why, _ in world.event_summaries(name)] == ["PollFailed"], name
    assert request_count(world.sim, target) == 0  # nothing was sent without credentials

    # A Secret fixed later is used: one of them, at its next poll (pollInterval 10s).
    world.create_secret("creds-missing-key")
    world.poll_now("missing-key")
    world.wait_condition("missing-key", "Synced", "True", "PollSucceeded")

    # Meanwhile the healthy watch kept its schedule and never failed.
    elapsed = time.monotonic() - started
    polls = request_count(world.sim, healthy) - requests_before
    assert polls >= int(elapsed // 5) - 1, (polls, elapsed)
    assert world.condition("healthy", "Synced") == synced_before
    assert [why for _, why, _ in world.event_summaries("healthy")] == ["WorkflowDiscovered"]
    times = request_times(world.sim, healthy)[-polls:]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert max(gaps) < 5 + 2.5, gaps
    measured(
        "healthy watch beside 6 bad Secrets",
        {"polls": polls, "seconds": round(elapsed, 1), "max_gap_s": round(max(gaps), 2)},
    )
