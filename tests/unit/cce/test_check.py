"""`cce-upgrade-watch check` against the local scripted server."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from cce_upgrade_watch.cli import main
from tests.unit.cce.conftest import (
    ACCESS_KEY,
    CLUSTER_ID,
    PROJECT_ID,
    SECRET_KEY,
    SECRETS,
    SECURITY_TOKEN,
    TOKEN,
    WORKFLOWS_PATH,
    workflow,
    workflow_list,
)
from tests.unit.cce.scripted_server import Reply, ScriptedServer

CREDENTIAL_VARIABLES = (
    "CLOUD_SDK_AK",
    "CLOUD_SDK_SK",
    "CLOUD_SDK_SECURITY_TOKEN",
    "CCE_AUTH_TOKEN",
)

RUNNING = workflow(
    "w-new",
    phase="Running",
    created="2024-06-01 10:00:00.5 +0200 CEST",
    updated="2024-06-01T08:05:00Z",
    points=[
        {
            "taskType": "PreCheck",
            "taskID": "pc-1",
            "status": "Success",
            "startTimeStamp": "2024-06-01 08:00:01 +0000 UTC",
            "endTimeStamp": "2024-06-01 08:02:00 +0000 UTC",
            "expireTimeStamp": "2024-06-01 09:00:00 +0000 UTC",
        },
        {"taskType": "Cluster", "taskID": "cl-1", "status": "Running",
         "startTimeStamp": "2024-06-01T08:02:30Z"},
        {"taskType": "PostCheck"},
    ],
    lines=[
        {"startPoint": {"taskType": "PreCheck"}, "endPoint": {"taskType": "Cluster"},
         "critical": "true"},
        {"startPoint": {"taskType": "Cluster"}, "endPoint": {"taskType": "PostCheck"},
         "critical": False},
    ],
)  # fmt: skip
OLD = workflow("w-old", phase="Success", created="2023-11-24 08:39:15.894417 +0000 UTC")


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aksk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_SDK_AK", ACCESS_KEY)
    monkeypatch.setenv("CLOUD_SDK_SK", SECRET_KEY)
    monkeypatch.setenv("CLOUD_SDK_SECURITY_TOKEN", SECURITY_TOKEN)


def check(server: ScriptedServer, *extra: str) -> int:
    return main(
        ["check", "--endpoint", server.url, "--project-id", PROJECT_ID, "--cluster-id", CLUSTER_ID,
         *extra]
    )  # fmt: skip


def _no_secrets(*texts: str) -> None:
    joined = "".join(texts)
    assert [s for s in SECRETS if s in joined] == []


@pytest.mark.usefixtures("aksk")
def test_table(server: ScriptedServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.script(Reply(200, workflow_list(OLD, RUNNING)))
    assert check(server) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"Cluster {CLUSTER_ID}: 2 upgrade workflows, current first"
    assert out.index("Workflow w-new") < out.index("Workflow w-old")
    assert "  Phase:    Running" in lines
    assert "  Versions: v1.28.3-r0 -> v1.29.1-r0" in lines
    assert "  Created:  2024-06-01T08:00:00.500000Z" in lines
    assert "  Path:     PreCheck -> Cluster (critical), Cluster -> PostCheck" in lines
    header = next(line for line in lines if line.strip().startswith("TASK"))
    assert header.split() == ["TASK", "STATUS", "STARTED", "ENDED", "EXPIRES", "TASK", "ID"]
    row = next(line for line in lines if line.strip().startswith("PreCheck"))
    assert row.split() == [
        "PreCheck", "Success", "2024-06-01T08:00:01Z", "2024-06-01T08:02:00Z",
        "2024-06-01T09:00:00Z", "pc-1",
    ]  # fmt: skip
    assert next(line for line in lines if line.strip().startswith("PostCheck")).split() == [
        "PostCheck", "-", "-", "-", "-", "-",
    ]  # fmt: skip
    seen = server.seen[0]
    assert seen.raw_path == WORKFLOWS_PATH
    assert seen.headers["authorization"].startswith(f"SDK-HMAC-SHA256 Access={ACCESS_KEY}")
    assert seen.headers["x-security-token"] == SECURITY_TOKEN
    _no_secrets(out, err)


@pytest.mark.usefixtures("aksk")
def test_json_is_the_status_shape_newest_first(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script(Reply(200, workflow_list(OLD, RUNNING)))
    assert check(server, "-o", "json") == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    newest, oldest = document["workflows"]
    assert newest == {
        "workflowID": "w-new",
        "phase": "Running",
        "clusterVersion": "v1.28.3-r0",
        "targetVersion": "v1.29.1-r0",
        "createdAt": "2024-06-01T08:00:00.500000Z",
        "updatedAt": "2024-06-01T08:05:00Z",
        "pointStatuses": [
            {
                "taskType": "PreCheck",
                "taskID": "pc-1",
                "status": "Success",
                "startTimeStamp": "2024-06-01T08:00:01Z",
                "endTimeStamp": "2024-06-01T08:02:00Z",
                "expireTimeStamp": "2024-06-01T09:00:00Z",
            },
            {
                "taskType": "Cluster",
                "taskID": "cl-1",
                "status": "Running",
                "startTimeStamp": "2024-06-01T08:02:30Z",
            },
            {"taskType": "PostCheck"},
        ],
        "lineStatuses": [
            {"startPoint": {"taskType": "PreCheck"}, "endPoint": {"taskType": "Cluster"},
             "critical": True},
            {"startPoint": {"taskType": "Cluster"}, "endPoint": {"taskType": "PostCheck"},
             "critical": False},
        ],
    }  # fmt: skip
    assert oldest["workflowID"] == "w-old"


def test_token_from_the_environment(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCE_AUTH_TOKEN", TOKEN)
    assert check(server, "-o", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"workflows": []}
    assert server.seen[0].headers["x-auth-token"] == TOKEN
    assert "authorization" not in server.seen[0].headers


def test_no_workflows_table(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCE_AUTH_TOKEN", TOKEN)
    assert check(server) == 0
    # The lifecycle sections follow (every call here answers an empty list).
    assert capsys.readouterr().out == (
        f"Cluster {CLUSTER_ID} has no upgrade workflows.\n"
        "\n"
        "Pre-check: none yet\n"
        "\n"
        "Next upgrade\n"
        "  Plan:     none scheduled\n"
        "  Window:   none set\n"
        "\n"
        "Versions: unknown\n"
        "\n"
        "Last backup: none\n"
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "no credentials: set CLOUD_SDK_AK and CLOUD_SDK_SK"),
        ({"CLOUD_SDK_AK": ACCESS_KEY}, "CLOUD_SDK_AK is set but CLOUD_SDK_SK is not"),
        ({"CLOUD_SDK_SK": SECRET_KEY, "CCE_AUTH_TOKEN": TOKEN}, "CLOUD_SDK_SK is set but"),
        ({"CCE_AUTH_TOKEN": "  "}, "no credentials"),
    ],
)
def test_missing_credentials_exit_3_without_calling(
    server: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    complaint: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert check(server) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("cce-upgrade-watch check: error: ")
    assert complaint in err
    assert server.seen == []
    _no_secrets(out, err)


@pytest.mark.usefixtures("aksk")
@pytest.mark.parametrize(
    ("status", "body", "exit_code", "quoted"),
    [
        (401, {"error_code": "CCE.01401001", "error_msg": "Authentication failed"}, 3,
         ['CCE.01401001 "Authentication failed"']),
        (404, {"errorCode": "CCE.01404001", "errorMessage": "Cluster not found",
               "message": "cluster b4b9 not found"}, 4,
         ['CCE.01404001 "Cluster not found; cluster b4b9 not found"']),
        (403, {"error_code": "CCE.01403001", "error_msg": f"denied for {SECRET_KEY}"}, 5,
         ['CCE.01403001 "denied for ****"']),
        (503, {"error_code": "CCE.01500001", "error_msg": "Service busy"}, 5,
         ["HTTP 503", "Service busy"]),
        (200, b"<html>proxy login</html>", 5, ["the response is not JSON"]),
    ],
)  # fmt: skip
def test_api_failures_exit_with_their_code_and_one_clear_line(
    server: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    status: int,
    body: Any,
    exit_code: int,
    quoted: list[str],
) -> None:
    server.script(Reply(status, body, {"X-Request-Id": "req-7f3a", "Retry-After": "0"}))
    assert check(server) == exit_code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("cce-upgrade-watch check: error: ")
    for text in [*quoted, "[request id req-7f3a]"]:
        assert text in err
    _no_secrets(out, err)


@pytest.mark.parametrize(
    "arguments",
    [
        ["check", "--project-id", PROJECT_ID, "--cluster-id", CLUSTER_ID],
        ["check", "--region", "ap-southeast-1", "--endpoint", "https://x.example",
         "--project-id", PROJECT_ID, "--cluster-id", CLUSTER_ID],
        ["check", "--region", "ap-southeast-1", "--cluster-id", CLUSTER_ID],
        ["check", "--region", "ap-southeast-1", "--project-id", PROJECT_ID, "--cluster-id",
         CLUSTER_ID, "-o", "yaml"],
        ["check", "--region", "ap-southeast-1", "--project-id", PROJECT_ID, "--cluster-id",
         CLUSTER_ID, "--timeout", "0"],
    ],
)  # fmt: skip
def test_usage_errors_exit_2(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(arguments)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("where", "complaint"),
    [
        (["--endpoint", "http://10.0.0.8:8080"], "plain http://"),
        (["--region", "Moon_1"], "not a Huawei Cloud region id"),
    ],
)
def test_unusable_endpoints_exit_2(
    where: list[str],
    complaint: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CCE_AUTH_TOKEN", TOKEN)
    arguments = ["check", *where, "--project-id", PROJECT_ID, "--cluster-id", CLUSTER_ID]
    assert main(arguments) == 2
    assert complaint in capsys.readouterr().err


def test_as_a_separate_process_without_kubernetes(server: ScriptedServer) -> None:
    # The real command line, and proof that `check` and cce/ never load kopf or kubernetes.
    server.script(Reply(200, workflow_list(RUNNING)))
    script = (
        "import sys; from cce_upgrade_watch.commands import check; from cce_upgrade_watch.cce "
        "import auth, client, endpoints, models, signing, timestamps, views, errors\n"
        "import argparse; parser = argparse.ArgumentParser(); check.configure(parser)\n"
        "code = check.execute(parser.parse_args(sys.argv[1:]))\n"
        "assert not {'kopf', 'kubernetes'} & set(sys.modules), 'kubernetes imported'\n"
        "sys.exit(code)"
    )
    env = {"CCE_AUTH_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script, "--endpoint", server.url, "--project-id", PROJECT_ID,
         "--cluster-id", CLUSTER_ID, "-o", "json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["workflows"][0]["workflowID"] == "w-new"

    result = subprocess.run(
        [sys.executable, "-m", "cce_upgrade_watch", "check", "--endpoint", server.url,
         "--project-id", PROJECT_ID, "--cluster-id", "missing"],
        capture_output=True, text=True, env={**env, "CCE_AUTH_TOKEN": ""}, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr


@pytest.mark.usefixtures("aksk")
def test_an_answer_over_the_cap_is_refused(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    padded = {"kind": "List", "apiVersion": "v3", "items": [], "pad": " " * 4000}
    server.script(Reply(200, padded))
    assert check(server, "--cce-max-response-bytes", "2048") == 5
    _, err = capsys.readouterr()
    assert "answer larger than 2048 bytes" in err
    assert check(server) == 0  # the default cap (1 MiB) reads it


def test_the_cap_must_be_a_sensible_number(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("12", "lots"):
        with pytest.raises(SystemExit) as caught:
            main(["check", "--region", "ap-southeast-1", "--project-id", PROJECT_ID,
                  "--cluster-id", CLUSTER_ID, "--cce-max-response-bytes", value])  # fmt: skip
        assert caught.value.code == 2
    assert "--cce-max-response-bytes" in capsys.readouterr().err


@pytest.mark.usefixtures("aksk")
def test_unreadable_fields_are_left_out_with_a_warning(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = workflow("w-1", points=[{"taskType": "PreCheck", "startTimeStamp": "1700815155"}])
    server.script(Reply(200, workflow_list(odd)))
    assert check(server, "-o", "json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["workflows"][0]["pointStatuses"] == [{"taskType": "PreCheck"}]
    assert err.startswith("cce-upgrade-watch check: warning: left out unreadable fields: ")
    assert "startTimeStamp x1" in err
