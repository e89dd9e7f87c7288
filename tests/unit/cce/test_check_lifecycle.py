"""`check`'s lifecycle part against the scripted server, where answers are chosen per path."""

from __future__ import annotations

import json

import pytest

from cce_upgrade_watch.cli import main
from tests.unit.cce.conftest import CLUSTER_ID, PROJECT_ID, TOKEN, workflow, workflow_list
from tests.unit.cce.scripted_server import Reply, ScriptedServer, Seen

WITH_PRECHECK = workflow(
    "w-1", points=[{"taskType": "PreCheck", "taskID": "pc-gone", "status": "Failed"}]
)


def route(seen: Seen) -> Reply:
    path = seen.path
    if path.endswith("/upgradeworkflows"):
        return Reply(200, workflow_list(WITH_PRECHECK))
    if path.endswith("/precheck/tasks/pc-gone"):
        return Reply(404, {"error_code": "CCE.01404001", "error_msg": "no such task"})
    if path.endswith("/precheck/tasks"):
        return Reply(200, {"items": [
            {"metadata": {"uid": "pc-old", "creationTimestamp": "2024-01-01T00:00:00Z"}},
            {"metadata": {"uid": "pc-new", "creationTimestamp": "2024-02-01T00:00:00Z"},
             "status": {"phase": "Success"}},
        ]})  # fmt: skip
    return Reply(200, {})


def test_a_precheck_task_the_show_call_cannot_find_is_looked_up_in_the_list(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCE_AUTH_TOKEN", TOKEN)
    for name in ("CLOUD_SDK_AK", "CLOUD_SDK_SK", "CLOUD_SDK_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    server.inspect = route
    code = main(
        ["check", "--endpoint", server.url, "--project-id", PROJECT_ID, "--cluster-id",
         CLUSTER_ID, "-o", "json"]
    )  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["preCheck"]["taskID"] == "pc-new"
    assert document["preCheck"]["phase"] == "Success"
    assert "notAvailable" not in document
    paths = [seen.path.rsplit("/", 2)[-2:] for seen in server.seen[:3]]
    assert paths == [["operation", "upgradeworkflows"], ["tasks", "pc-gone"], ["precheck", "tasks"]]
