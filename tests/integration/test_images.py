"""The product images, built on this machine and run as containers: what users run is what passes.

Why this module: the gateway and the operator ship as images, and an image can be broken in ways
no venv test sees (a missing dependency, a file the non-root user cannot read, a write to the
read-only root). These tests build both images (:mod:`kafka_testbed.images`, cached by content),
look inside them, and run the gateway image against real brokers as a pod would: UID 10001, a
read-only root, its config mounted read-only, host networking on its own loopback address. The
operator and switch tests run their gateway pods from the same image (:mod:`kube_testbed`).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from kafka_testbed import admin, clients, gateways, images
from kafka_testbed.clusters import Cluster

CONTAINER_HOST = "127.0.0.131"
PROBED = (
    "failover_gateway", "failover_operator", "uvloop", "kopf", "kubernetes", "kafka_testbed",
    "kube_testbed", "pip",
)  # fmt: skip
CONTENT_PROBE = (
    "import importlib.util, json; "
    f"print(json.dumps({{n: importlib.util.find_spec(n) is not None for n in {PROBED!r}}}))"
)


@pytest.fixture(scope="session")
def built() -> images.BuiltImages:
    try:
        return images.build_all()
    except images.ImagesUnavailable as error:
        pytest.skip(f"no container engine here: {error}")


def contents(built: images.BuiltImages, tag: str) -> dict[str, bool]:
    found = built.engine.run(
        "run", "--rm", "--network", "none", "--pull", "never", "--entrypoint", "python3",
        tag, "-c", CONTENT_PROBE,
    )  # fmt: skip
    result: dict[str, bool] = json.loads(found.stdout.strip().splitlines()[-1])
    return result


def test_the_gateway_image_holds_the_gateway_and_no_kubernetes_operator_lab_or_pip(
    built: images.BuiltImages,
) -> None:
    assert contents(built, built.gateway) == {
        "failover_gateway": True, "uvloop": True, "failover_operator": False, "kopf": False,
        "kubernetes": False, "kafka_testbed": False, "kube_testbed": False, "pip": False,
    }  # fmt: skip


def test_the_operator_image_holds_the_operator_and_its_config_model_and_no_lab(
    built: images.BuiltImages,
) -> None:
    found = contents(built, built.operator)
    assert found["failover_operator"] and found["kopf"] and found["kubernetes"]
    assert found["failover_gateway"]  # the public config model the operator renders
    assert not (found["kafka_testbed"] or found["kube_testbed"] or found["pip"])


@pytest.mark.parametrize("which", ["gateway", "operator"])
def test_each_image_runs_as_uid_10001_with_oci_labels_and_relies_on_probes(
    built: images.BuiltImages, which: str
) -> None:
    tag = built.gateway if which == "gateway" else built.operator
    inspected = json.loads(built.engine.run("image", "inspect", tag).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == [f"kafka-failover-{which}"]
    labels = config.get("Labels") or {}
    for label in ("title", "version", "revision", "licenses", "source"):
        assert labels.get(f"org.opencontainers.image.{label}"), f"no {label} label"
    assert labels["org.opencontainers.image.revision"] != "unknown"
    assert not config.get("Healthcheck"), "liveness and readiness are the pod's probes"


def test_the_operator_image_starts_its_operator(built: images.BuiltImages) -> None:
    ran = built.engine.run(
        "run", "--rm", "--network", "none", "--read-only", "--user", "10001:10001",
        "--pull", "never", built.operator, "--help",
    )  # fmt: skip
    assert "--liveness" in ran.stdout


def test_a_gateway_container_on_a_read_only_root_serves_clients_and_switches(
    built: images.BuiltImages, kafka_single: Cluster, kafka_failover: Cluster, tmp_path: Path
) -> None:
    topic = f"image-{uuid.uuid4().hex[:8]}"
    for cluster in (kafka_single, kafka_failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=1)
    gateway = gateways.start_gateway(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap},
        workdir=tmp_path,
        host=CONTAINER_HOST,
        container=images.ContainerImage(built.engine, built.gateway),
    )
    try:
        driver = clients.ConfluentKafka()
        driver.produce(gateway.bootstrap, topic, [("k", "before")])
        assert gateway.switch("failover").status == 200
        driver.produce(gateway.bootstrap, topic, [("k", "after")])
        rss = gateway.resident_bytes()
    finally:
        gateway.stop()
    on_main = driver.consume(kafka_single.bootstrap, topic, group="g1", count=1, timeout=30)
    on_failover = driver.consume(kafka_failover.bootstrap, topic, group="g2", count=1, timeout=30)
    assert [value for _, value in on_main] == ["before"]
    assert [value for _, value in on_failover] == ["after"]
    sizes = {tag: images.image_size(built.engine, tag) for tag in (built.gateway, built.operator)}
    print(f"\ngateway container RSS after two produces: {rss / 2**20:.1f} MiB")
    for tag, size in sizes.items():
        print(f"{tag}: {size / 1e6:.1f} MB")
