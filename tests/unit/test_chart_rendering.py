"""The Helm chart rendered by the pinned helm, parsed and checked object by object; no cluster.

What users rely on is checked on the rendered YAML, for the default values and every example:
hardened pods, exactly the operator's RBAC rules (namespaced, or cluster-wide when asked), the
operator's arguments, KafkaFailover objects from values, alerts built on metrics the gateway really
exports, and a schema that rejects wrong values with a message naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from failover_gateway.server import metrics
from failover_operator import model, rbac
from kube_testbed.helm_commands import Helm, HelmError

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kafka-failover"
EXAMPLES = sorted((CHART / "examples").glob("values-*.yaml"))
NAMESPACE = "payments"
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
FAILOVER_EXAMPLES = [
    CHART / "examples" / "values-prod.yaml",
    CHART / "examples" / "values-failover.yaml",
]

Objects = list[dict[str, Any]]


def render(helm: Helm, *values: Path, settings: tuple[str, ...] = ()) -> Objects:
    return helm.template(CHART, namespace=NAMESPACE, values=values, settings=settings)


def only(objects: Objects, kind: str) -> dict[str, Any]:
    matching = [o for o in objects if o["kind"] == kind]
    assert len(matching) == 1, (
        f"expected one {kind}, got {[o['metadata']['name'] for o in matching]}"
    )
    return matching[0]


def pod_templates(objects: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in objects:
        if item["kind"] in POD_OWNERS:
            spec = item["spec"]
            template = (
                spec["jobTemplate"]["spec"]["template"]
                if "jobTemplate" in spec
                else spec["template"]
            )
            yield item["metadata"]["name"], template["spec"]


def operator_container(objects: Objects) -> dict[str, Any]:
    containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


def schema_error(helm: Helm, *settings: str) -> str:
    with pytest.raises(HelmError) as raised:
        render(helm, settings=settings)
    return str(raised.value)


def exported_metric_names() -> set[str]:
    """Every metric name the gateway's /metrics serves (from its own registry)."""
    traffic = metrics.Traffic()
    traffic.requests[("main", 0)] += 1
    traffic.request_bytes[("main", 0)] += 1
    traffic.response_bytes[("main", 0)] += 1
    traffic.connections_total["main"] += 1
    snapshot = metrics.Snapshot(
        epoch=1,
        active="main",
        clusters=("main", "failover"),
        open_connections={"main": 1},
        reachable={"main": True, "failover": False},
    )
    text = generate_latest(metrics.build_registry(traffic, lambda: snapshot)).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}


def metric_names_in(expression: str) -> set[str]:
    return set(re.findall(r"\bkafka_failover_[a-z_]+\b", expression))


def test_helm_lint_passes_strictly_with_the_default_values(helm: Helm) -> None:
    helm.run("lint", "--strict", str(CHART))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_helm_lint_passes_strictly_with_every_example(helm: Helm, example: Path) -> None:
    helm.run("lint", "--strict", str(CHART), "--values", str(example))


def test_the_default_values_render_the_operator_its_account_and_a_namespaced_role(
    helm: Helm,
) -> None:
    objects = render(helm)
    assert sorted(o["kind"] for o in objects) == [
        "Deployment",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in objects)


@pytest.mark.parametrize("example", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
def test_every_pod_template_is_hardened_and_bounded(helm: Helm, example: Path | None) -> None:
    objects = render(helm, *([example] if example else []))
    templates = list(pod_templates(objects))
    assert templates
    for name, pod in templates:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert context.get("privileged") is not True
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_the_operator_is_one_replica_rolled_with_its_successor_standing_by(helm: Helm) -> None:
    """Leader election keeps two pods from acting at once, so the new pod may start first."""
    deployment = only(render(helm), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_operator_watches_its_own_namespace_and_serves_liveness(helm: Helm) -> None:
    objects = render(helm)
    container = operator_container(objects)
    assert container["args"] == ["--liveness", "http://0.0.0.0:8080/healthz"]
    own_namespace = {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    assert container["env"] == [
        {"name": "POD_NAMESPACE", **own_namespace},
        {"name": "WATCH_NAMESPACE", **own_namespace},
    ]
    assert container["ports"] == [{"name": "liveness", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == only(objects, "ServiceAccount")["metadata"]["name"]
    assert container["image"] == "ghcr.io/kafka-failover/operator:0.1.0"


def test_the_role_holds_exactly_the_operators_rules_and_binds_its_account(helm: Helm) -> None:
    objects = render(helm)
    role, binding = only(objects, "Role"), only(objects, "RoleBinding")
    assert role["rules"] == rbac.RULES
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    account = only(objects, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]


@pytest.mark.parametrize("example", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
def test_no_rbac_object_grants_a_wildcard(helm: Helm, example: Path | None) -> None:
    objects = [o for o in render(helm, *([example] if example else [])) if o["kind"] in RBAC_KINDS]
    assert objects
    for item in objects:
        for rule in item.get("rules", []):
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (item["kind"], rule)
            assert rule in rbac.RULES


def test_watching_all_namespaces_switches_to_a_cluster_role_and_the_flag(helm: Helm) -> None:
    objects = render(helm, CHART / "examples" / "values-all-namespaces.yaml")
    kinds = {o["kind"] for o in objects}
    assert {"ClusterRole", "ClusterRoleBinding"} <= kinds
    assert not {"Role", "RoleBinding"} & kinds
    cluster_role = only(objects, "ClusterRole")
    assert cluster_role["rules"] == rbac.RULES
    assert "namespace" not in cluster_role["metadata"]
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    container = operator_container(objects)
    assert container["args"][0] == "--all-namespaces"
    assert [item["name"] for item in container["env"]] == ["POD_NAMESPACE"], "the Lease's home"
    monitor = only(objects, "ServiceMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def test_kafka_failovers_come_from_values_and_survive_uninstall(helm: Helm) -> None:
    objects = render(helm, CHART / "examples" / "values-prod.yaml")
    kfo = only(objects, "KafkaFailover")
    assert kfo["apiVersion"] == f"{model.GROUP}/{model.VERSION}"
    assert kfo["metadata"]["name"] == "prod"
    assert kfo["metadata"]["namespace"] == NAMESPACE
    assert kfo["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    spec = model.parse_spec(kfo["spec"])
    assert spec.active == "main" and spec.cluster("failover") is not None


def test_the_failover_pr_changes_only_the_active_cluster(helm: Helm) -> None:
    before = only(render(helm, FAILOVER_EXAMPLES[0]), "KafkaFailover")
    after = only(render(helm, *FAILOVER_EXAMPLES), "KafkaFailover")
    assert (before["spec"]["active"], after["spec"]["active"]) == ("main", "failover")
    assert {**after["spec"], "active": "main"} == before["spec"]


def test_kafka_failovers_can_be_deleted_with_the_release_when_asked(helm: Helm) -> None:
    objects = render(
        helm,
        CHART / "examples" / "values-prod.yaml",
        settings=("keepKafkaFailoversOnUninstall=false",),
    )
    assert "annotations" not in only(objects, "KafkaFailover")["metadata"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicas=three", "at '/replicas': got string, want integer"),
        ("replicas=3", "at '/replicas': maximum: got 3, want 2"),
        ("bogus=1", "additional properties 'bogus' not allowed"),
        ("watch.allNamespaces=maybe", "at '/watch/allNamespaces': got string, want boolean"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        (
            "monitoring.prometheusRule.switchTimeout=soon",
            "at '/monitoring/prometheusRule/switchTimeout'",
        ),
    ],
)
def test_the_schema_rejects_wrong_values_naming_the_key(
    helm: Helm, setting: str, message: str
) -> None:
    error = schema_error(helm, setting)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_the_schema_checks_kafka_failover_specs_against_the_crd(helm: Helm) -> None:
    error = schema_error(
        helm,
        "kafkaFailovers[0].name=prod",
        "kafkaFailovers[0].spec.active=main",
        "kafkaFailovers[0].spec.clusters[0].name=main",
    )
    assert "at '/kafkaFailovers/0/spec/clusters': minItems: got 1, want 2" in error
    assert "missing property 'bootstrapServers'" in error


def test_monitoring_is_off_by_default_and_alerts_use_metrics_the_gateway_exports(
    helm: Helm,
) -> None:
    assert not {"ServiceMonitor", "PrometheusRule", "ConfigMap"} & {o["kind"] for o in render(helm)}
    objects = render(helm, CHART / "examples" / "values-prod.yaml")
    rules = only(objects, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "KafkaFailoverSwitchNotCompleted",
        "KafkaFailoverPodsNotSwitched",
        "KafkaFailoverActiveClusterUnreachable",
        "KafkaFailoverStandbyClusterUnreachable",
    }
    exported = exported_metric_names()
    for rule in rules:
        used = metric_names_in(rule["expr"])
        assert used and used <= exported, (rule["alert"], used - exported)
        assert rule["for"] and rule["labels"]["severity"] in {"critical", "warning"}
    not_switched = next(r for r in rules if r["alert"] == "KafkaFailoverPodsNotSwitched")
    assert not_switched["for"] == "2m" and "kafka_failover_active_cluster" in not_switched["expr"]


def test_the_service_monitor_scrapes_the_gateways_admin_port(helm: Helm) -> None:
    monitor = only(render(helm, CHART / "examples" / "values-prod.yaml"), "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kafka-failover-gateway",
        "app.kubernetes.io/managed-by": "kafka-failover-operator",
    }
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("admin", "/metrics")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_grafana_dashboard_is_valid_json_on_exported_metrics(helm: Helm) -> None:
    config_map = only(render(helm, CHART / "examples" / "values-prod.yaml"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["kafka-failover.json"])
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(metric_names_in(e) for e in expressions))
    assert used and used <= exported_metric_names()
    assert dashboard["uid"] == "kafka-failover"


def test_notes_show_how_to_watch_and_how_to_switch(helm: Helm) -> None:
    args = ["install", "kfo", str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    default = helm.run(*args).stdout
    assert f"kubectl get kfo --namespace {NAMESPACE}" in default
    assert (
        f"kubectl patch kafkafailover NAME --namespace {NAMESPACE} --type merge "
        """-p '{"spec":{"active":"failover"}}'"""
    ) in default
    prod = helm.run(*args, "--values", str(FAILOVER_EXAMPLES[0])).stdout
    assert (
        f"kubectl patch kafkafailover prod --namespace {NAMESPACE} --type merge "
        """-p '{"spec":{"active":"failover"}}'"""
    ) in prod


def test_an_existing_service_account_must_be_named_and_is_then_bound(helm: Helm) -> None:
    with pytest.raises(HelmError) as raised:
        render(helm, settings=("serviceAccount.create=false",))
    assert "serviceAccount.name is required when serviceAccount.create is false" in str(
        raised.value
    )
    objects = render(helm, settings=("serviceAccount.create=false", "serviceAccount.name=ops"))
    assert "ServiceAccount" not in {o["kind"] for o in objects}
    assert only(objects, "RoleBinding")["subjects"][0]["name"] == "ops"
    assert only(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


def test_a_paused_operator_has_zero_replicas_and_notes_say_so(helm: Helm) -> None:
    assert only(render(helm, settings=("replicas=0",)), "Deployment")["spec"]["replicas"] == 0
    notes = helm.run(
        "install", "kfo", str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
        "--set", "replicas=0",
    ).stdout  # fmt: skip
    assert "It is PAUSED (replicas: 0)" in notes


def test_two_operator_replicas_are_allowed_for_a_hot_standby(helm: Helm) -> None:
    assert only(render(helm, settings=("replicas=2",)), "Deployment")["spec"]["replicas"] == 2
