"""The Helm chart: lints clean, renders what the kustomize base installs by
default (no Secret access anywhere, the admission policy, ingress and egress
policies), narrows RBAC to Roles when given namespaces, and grants Secrets
per namespace, by name, or cluster-wide only when asked.

helm is built from the Go module proxy by `hack/helm build` (the e2e chart
test builds it); without it the tests that run helm skip.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.shipping._support import (
    CHART,
    CRD_FILE,
    HACK_HELM,
    INTEGRATIONS,
    REPO_ROOT,
    built_helm,
    helm,
    helm_template,
    manifest,
    pyproject,
    yaml_document,
)

HELM = built_helm()
requires_helm = pytest.mark.skipif(
    HELM is None, reason="helm is not built: run hack/helm build (about 3 minutes, once)"
)


def helm_binary() -> Path:
    assert HELM is not None
    return HELM


def objects_by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (obj,) = [o for o in objects_by_kind(objects, kind) if name in (None, o["metadata"]["name"])]
    return obj


FULLNAME = "cuw-cce-upgrade-watch"


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(operator, dict)
    return operator


# ---------------------------------------------------------------- no helm needed


def test_chart_versions_follow_the_project() -> None:
    chart = yaml_document(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == pyproject()["project"]["version"]


def test_chart_crds_are_the_repositorys_not_copies() -> None:
    links = sorted((CHART / "crds").iterdir())
    assert all(link.is_symlink() for link in links)
    # The watch CRD, and kopf's peering CRDs for highAvailability.
    assert {link.resolve() for link in links} == {
        CRD_FILE.resolve(),
        (REPO_ROOT / "crds" / "peering" / "kopf-peering.yaml").resolve(),
    }


def test_hack_helm_builds_the_version_its_go_module_requires() -> None:
    script = HACK_HELM.read_text()
    (version,) = re.findall(r"^HELM_VERSION=(v[\d.]+)$", script, flags=re.MULTILINE)
    go_mod = (REPO_ROOT / "hack" / "tools" / "helm" / "go.mod").read_text()
    assert re.search(rf"^\thelm\.sh/helm/v3 {re.escape(version)}\b", go_mod, flags=re.MULTILINE)
    assert "tool helm.sh/helm/v3/cmd/helm" in go_mod


# ---------------------------------------------------------------- helm lint / template


@requires_helm
@pytest.mark.parametrize(
    "values",
    [
        (),
        ("--set", "namespaces={team-a,team-b}"),
        (
            "--set",
            "image.digest=sha256:" + "0" * 64,
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ),
        ("--set", "metrics.enabled=false", "--set", "networkPolicy.enabled=false"),
        (
            "--set",
            "metrics.prometheusRule.enabled=true,metrics.prometheusRule.kubeStateMetrics=true",
            "--set",
            "metrics.prometheusRule.labels.release=prometheus",
        ),
        (
            "--set",
            "rbac.secretAccess=clusterWide",
            "--set",
            "rbac.secretGrants[0].namespace=team-a",
            "--set",
            "rbac.secretGrants[0].names={cce-credentials}",
            "--set",
            "rbac.tokenAccess=clusterWide",
            "--set",
            "rbac.tokenGrants[0].namespace=team-a",
            "--set",
            "rbac.tokenGrants[0].names={watcher}",
            "--set",
            "allowedEndpointHosts={*.gw.example.com}",
            "--set",
            "admissionPolicy.enabled=false,networkPolicy.egress.enabled=false",
        ),
        ("--set", "highAvailability.enabled=true", "--set", "endpointCA.configMap=ca"),
        ("--set", "highAvailability.enabled=true", "--set", "namespaces={team-a}"),
    ],
    ids=[
        "defaults",
        "namespaced",
        "digest-and-servicemonitor",
        "no-metrics",
        "prometheusrule",
        "secrets",
        "ha",
        "ha-ns",
    ],
)
def test_helm_lint_strict(values: tuple[str, ...]) -> None:
    result = helm(helm_binary(), "lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in result.stdout, result.stdout


@requires_helm
def test_defaults_render_what_the_kustomize_base_installs() -> None:
    objects = helm_template(helm_binary())
    assert sorted(obj["kind"] for obj in objects) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
         "Deployment", "Service", "NetworkPolicy", "NetworkPolicy", "ValidatingAdmissionPolicy",
         "ValidatingAdmissionPolicyBinding"]
    )  # fmt: skip
    # The same permissions as manifests/, comments aside: no Secret in the main
    # role, a Secret reader bound nowhere.
    assert (
        only(objects, "ClusterRole", FULLNAME)["rules"]
        == manifest("ClusterRole", "cce-upgrade-watch")["rules"]
    )
    assert (
        only(objects, "ClusterRole", f"{FULLNAME}-secret-reader")["rules"]
        == manifest("ClusterRole", "cce-upgrade-watch-secret-reader")["rules"]
    )
    assert (
        only(objects, "ClusterRole", f"{FULLNAME}-token-creator")["rules"]
        == manifest("ClusterRole", "cce-upgrade-watch-token-creator")["rules"]
    )
    assert not any(
        "secrets" in r["resources"] for r in only(objects, "ClusterRole", FULLNAME)["rules"]
    )
    # The admission policy and both network policies are the base's.
    policy = manifest("ValidatingAdmissionPolicy", "cce-upgrade-watch-secret-access")
    assert only(objects, "ValidatingAdmissionPolicy")["spec"] == policy["spec"]
    binding = only(objects, "ValidatingAdmissionPolicyBinding")["spec"]
    assert binding["policyName"] == f"{FULLNAME}-secret-access"
    assert binding["validationActions"] == ["Deny"]
    for suffix in ("", "-egress"):
        ours = only(objects, "NetworkPolicy", FULLNAME + suffix)["spec"]
        theirs = manifest("NetworkPolicy", "cce-upgrade-watch" + suffix)["spec"]
        assert ours["policyTypes"] == theirs["policyTypes"]
        assert ours.get("ingress") == theirs.get("ingress")
        assert ours.get("egress") == theirs.get("egress")
    base = manifest("Deployment", "cce-upgrade-watch")
    ours, theirs = only(objects, "Deployment")["spec"], base["spec"]
    assert (ours["replicas"], ours["strategy"]) == (theirs["replicas"], theirs["strategy"])
    pod, base_pod = ours["template"]["spec"], theirs["template"]["spec"]
    for key in ("securityContext", "volumes", "automountServiceAccountToken"):
        assert pod[key] == base_pod[key], key
    chart_container, base_container = container(objects), base_pod["containers"][0]
    for key in ("securityContext", "livenessProbe", "readinessProbe", "resources", "ports",
                "volumeMounts", "env", "image", "imagePullPolicy"):  # fmt: skip
        assert chart_container[key] == base_container[key], key
    # The base's arguments, and the interval defaults spelled out.
    assert set(base_container["args"]) <= set(chart_container["args"])
    assert "--default-poll-interval=5m" in chart_container["args"]
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == FULLNAME
    (subject,) = binding["subjects"]
    assert subject == {
        "kind": "ServiceAccount",
        "name": only(objects, "ServiceAccount")["metadata"]["name"],
        "namespace": "ops",
    }


@requires_helm
def test_namespaces_get_roles_and_the_cluster_role_shrinks() -> None:
    objects = helm_template(helm_binary(), "--set", "namespaces={team-a,team-b}")
    roles = objects_by_kind(objects, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    base_rules = manifest("ClusterRole", "cce-upgrade-watch")["rules"]
    namespaced_rules = [r for r in base_rules if r["apiGroups"] != ["apiextensions.k8s.io"]]
    for role in roles:
        assert role["rules"] == namespaced_rules
        assert not any("secrets" in r["resources"] for r in role["rules"])
    bindings = objects_by_kind(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    # Cluster-wide only what has no namespace: noticing the CRD.
    assert only(objects, "ClusterRole", FULLNAME)["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        }
    ]
    args = container(objects)["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    assert "--all-namespaces" not in args


@requires_helm
def test_namespace_patterns_are_refused() -> None:
    result = helm(
        helm_binary(), "template", "cuw", str(CHART), "--set", "namespaces={team-*}", check=False
    )
    assert result.returncode != 0
    assert "patterns cannot get a Role each" in result.stderr


@requires_helm
def test_values_reach_the_deployment() -> None:
    digest = "sha256:" + "ab" * 32
    objects = helm_template(
        helm_binary(),
        "--set", f"image.repository=mirror/cce-upgrade-watch,image.digest={digest}",
        "--set", "intervals.poll=10m,intervals.activePoll=15s,cceConcurrency=8",
        "--set", "metrics.port=9100,resources.limits.memory=1Gi",
    )  # fmt: skip
    operator = container(objects)
    assert operator["image"] == f"mirror/cce-upgrade-watch@{digest}"
    for arg in ("--default-poll-interval=10m", "--default-active-poll-interval=15s",
                "--cce-concurrency=8", "--metrics-port=9100"):  # fmt: skip
        assert arg in operator["args"]
    assert operator["resources"]["limits"]["memory"] == "1Gi"
    service = only(objects, "Service")
    assert service["spec"]["ports"][0]["port"] == 9100
    # No checkov skip for the digest once there is one.
    annotations = only(objects, "Deployment")["metadata"]["annotations"]
    assert not any("CKV_K8S_43" in value for value in annotations.values())


def rendered_rules(*values: str) -> list[dict[str, Any]]:
    objects = helm_template(helm_binary(), "--set", "metrics.prometheusRule.enabled=true", *values)
    rule = only(objects, "PrometheusRule")
    assert rule["metadata"]["namespace"] == "ops"
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


@requires_helm
def test_prometheus_rule_renders_the_manifests_alerts() -> None:
    # The chart's template and the kustomize integration file say the same,
    # Prometheus' own {{ $labels... }} text included; the polling alert that
    # needs kube-state-metrics only when asked.
    manifest_rule = yaml_document(INTEGRATIONS / "prometheus" / "prometheusrule.yaml")
    expected = [r for group in manifest_rule["spec"]["groups"] for r in group["rules"]]
    with_ksm = rendered_rules("--set", "metrics.prometheusRule.kubeStateMetrics=true")
    assert with_ksm == expected
    assert [r["alert"] for r in rendered_rules()] == [
        r["alert"] for r in expected if r["alert"] != "CceUpgradeWatchPollingStalled"
    ]


@requires_helm
def test_prometheus_rule_thresholds_are_values() -> None:
    rules = {
        r["alert"]: r
        for r in rendered_rules(
            "--set",
            "metrics.prometheusRule.upgradeSoonHours=48",
            "--set",
            "metrics.prometheusRule.backupMaxAgeDays=3",
        )
    }
    soon = rules["CceUpgradeScheduledSoon"]
    assert soon["expr"].endswith("< 48 * 3600")
    assert "within 48 hours" in soon["annotations"]["summary"]
    backup = rules["CceBackupTooOldBeforeUpgrade"]
    assert backup["expr"].count("3 * 86400") == 2
    assert "older than 3 days" in backup["annotations"]["summary"]


@requires_helm
def test_prometheus_rule_is_off_by_default_and_without_metrics() -> None:
    for values in ((), ("--set", "metrics.prometheusRule.enabled=true,metrics.enabled=false")):
        assert not objects_by_kind(helm_template(helm_binary(), *values), "PrometheusRule")


@requires_helm
def test_metrics_can_be_turned_off() -> None:
    objects = helm_template(helm_binary(), "--set", "metrics.enabled=false")
    assert not objects_by_kind(objects, "Service")
    assert not any(arg.startswith("--metrics-port") for arg in container(objects)["args"])
    assert [port["name"] for port in container(objects)["ports"]] == ["healthz"]


@requires_helm
def test_secret_access_per_namespace_by_name_or_cluster_wide() -> None:
    # The default: no binding gives the operator any Secret.
    objects = helm_template(helm_binary())
    assert [b["roleRef"]["name"] for b in objects_by_kind(objects, "ClusterRoleBinding")] == [
        FULLNAME
    ]
    assert not objects_by_kind(objects, "RoleBinding")
    # Grants by name, in the namespaces given.
    objects = helm_template(
        helm_binary(),
        "--set", "rbac.secretGrants[0].namespace=team-a",
        "--set", "rbac.secretGrants[0].names={cce-credentials,cce-token}",
    )  # fmt: skip
    role = only(objects, "Role", f"{FULLNAME}-credentials")
    assert role["metadata"]["namespace"] == "team-a"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["cce-credentials", "cce-token"],
            "verbs": ["get"],
        }
    ]
    binding = only(objects, "RoleBinding", f"{FULLNAME}-credentials")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{FULLNAME}-credentials"
    }  # fmt: skip
    # Cluster-wide only on request.
    objects = helm_template(helm_binary(), "--set", "rbac.secretAccess=clusterWide")
    wide = only(objects, "ClusterRoleBinding", f"{FULLNAME}-secret-reader")
    assert wide["roleRef"]["name"] == f"{FULLNAME}-secret-reader"
    result = helm(
        helm_binary(), "template", "cuw", str(CHART), "--set", "rbac.secretAccess=all", check=False
    )
    assert result.returncode != 0
    assert "perNamespace or clusterWide" in result.stderr


@requires_helm
def test_token_access_per_namespace_by_name_or_cluster_wide() -> None:
    # The default: no binding lets the operator mint any ServiceAccount token.
    objects = helm_template(helm_binary())
    assert all(
        b["roleRef"]["name"] != f"{FULLNAME}-token-creator"
        for b in objects_by_kind(objects, "ClusterRoleBinding")
    )
    objects = helm_template(
        helm_binary(),
        "--set", "rbac.tokenGrants[0].namespace=team-a",
        "--set", "rbac.tokenGrants[0].names={watcher}",
    )  # fmt: skip
    role = only(objects, "Role", f"{FULLNAME}-identity")
    assert role["metadata"]["namespace"] == "team-a"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts/token"],
            "resourceNames": ["watcher"],
            "verbs": ["create"],
        }
    ]
    assert only(objects, "RoleBinding", f"{FULLNAME}-identity")["roleRef"]["name"] == (
        f"{FULLNAME}-identity"
    )
    objects = helm_template(helm_binary(), "--set", "rbac.tokenAccess=clusterWide")
    wide = only(objects, "ClusterRoleBinding", f"{FULLNAME}-token-creator")
    assert wide["roleRef"]["name"] == f"{FULLNAME}-token-creator"
    result = helm(
        helm_binary(), "template", "cuw", str(CHART), "--set", "rbac.tokenAccess=x", check=False
    )
    assert result.returncode != 0
    assert "rbac.tokenAccess must be perNamespace or clusterWide" in result.stderr


@requires_helm
def test_identity_flags() -> None:
    assert not any(
        "ambient" in a or "sts" in a for a in container(helm_template(helm_binary()))["args"]
    )
    objects = helm_template(
        helm_binary(),
        "--set", "identity.stsEndpoint=https://sts.example.com",
        "--set", "identity.ambientCredentials=metadata",
        "--set", "identity.ambientNamespaces={ops,platform}",
        "--set", "identity.metadataEndpoint=http://169.254.169.254",
    )  # fmt: skip
    args = container(objects)["args"]
    for flag in (
        "--sts-endpoint=https://sts.example.com",
        "--ambient-credentials=metadata",
        "--ambient-credentials-namespaces=ops,platform",
        "--metadata-endpoint=http://169.254.169.254",
    ):
        assert flag in args
    result = helm(
        helm_binary(), "template", "cuw", str(CHART),
        "--set", "identity.ambientCredentials=metadata", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "identity.ambientNamespaces must list" in result.stderr


@requires_helm
def test_allowed_endpoint_hosts_and_metrics_scrapers() -> None:
    objects = helm_template(
        helm_binary(),
        "--set", "allowedEndpointHosts={*.gw.example.com,cce.corp.example}",
        "--set", "networkPolicy.metricsFrom.podLabels.app=vmagent",
    )  # fmt: skip
    args = container(objects)["args"]
    assert "--allowed-endpoint-hosts=*.gw.example.com,cce.corp.example" in args
    assert "--allow-insecure-loopback" not in args
    ingress = only(objects, "NetworkPolicy", FULLNAME)["spec"]["ingress"]
    (metrics,) = [rule for rule in ingress if rule["ports"][0]["port"] == "metrics"]
    assert metrics["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "prometheus", "app": "vmagent"
    }  # fmt: skip


@requires_helm
def test_high_availability_runs_a_standby_of_lower_priority() -> None:
    """Issue 14: two replicas with peering (proven on a real node by test_node.py)."""
    assert not objects_by_kind(helm_template(helm_binary()), "ClusterKopfPeering")
    objects = helm_template(helm_binary(), "--set", "highAvailability.enabled=true")
    deployments = {d["metadata"]["name"]: d for d in objects_by_kind(objects, "Deployment")}
    assert sorted(deployments) == ["cuw-cce-upgrade-watch", "cuw-cce-upgrade-watch-standby"]
    priorities = {}
    for name, deployment in deployments.items():
        (operator,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "--peering=cuw-cce-upgrade-watch" in operator["args"]
        (priority,) = [a for a in operator["args"] if a.startswith("--priority=")]
        priorities[name] = int(priority.split("=")[1])
    assert priorities["cuw-cce-upgrade-watch"] > priorities["cuw-cce-upgrade-watch-standby"]
    # The standby's selector does not take the active one's Pods.
    standby = deployments["cuw-cce-upgrade-watch-standby"]["spec"]
    assert standby["selector"]["matchLabels"]["cce.upgradewatch.io/peering-role"] == "standby"
    assert only(objects, "ClusterKopfPeering")["metadata"]["name"] == "cuw-cce-upgrade-watch"
    (role,) = [r for r in objects_by_kind(objects, "ClusterRole")
               if r["metadata"]["name"] == "cuw-cce-upgrade-watch"]  # fmt: skip
    assert any("clusterkopfpeerings" in rule["resources"] for rule in role["rules"])


@requires_helm
def test_endpoint_ca_is_trusted_from_a_config_map() -> None:
    objects = helm_template(helm_binary(), "--set", "endpointCA.configMap=corp-ca")
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["SSL_CERT_FILE"] == "/etc/cce-upgrade-watch/endpoint-ca/ca.crt"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["endpoint-ca"]["configMap"]["name"] == "corp-ca"
    assert "SSL_CERT_FILE" not in json.dumps(helm_template(helm_binary()))
