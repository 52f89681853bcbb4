"""The configuration a lab Kafka node is given: a static quorum, 127.0.0.1 only, test settings."""

from pathlib import Path

from kafka_testbed import broker_properties
from kafka_testbed.broker_properties import NodeSpec

NODES = [NodeSpec(1, 9001, 9101), NodeSpec(2, 9002, 9102), NodeSpec(3, 9003, 9103)]


def test_every_node_of_a_cluster_is_a_voter_of_the_static_quorum() -> None:
    assert broker_properties.quorum_voters(NODES) == (
        "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    )


def test_a_node_is_broker_and_controller_listening_on_loopback_only() -> None:
    properties = broker_properties.server_properties(NODES[1], NODES, Path("/data"))

    assert properties["process.roles"] == "broker,controller"
    assert properties["node.id"] == "2"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9002"
    assert properties["log.dirs"] == "/data"


def test_internal_topics_are_replicated_to_every_node_of_a_three_node_cluster() -> None:
    properties = broker_properties.server_properties(NODES[0], NODES, Path("/data"))

    assert properties["offsets.topic.replication.factor"] == "3"
    assert properties["transaction.state.log.replication.factor"] == "3"
    assert properties["transaction.state.log.min.isr"] == "2"
    assert properties["default.replication.factor"] == "3"


def test_a_single_node_cluster_asks_for_no_more_replicas_than_it_has() -> None:
    properties = broker_properties.server_properties(NODES[0], NODES[:1], Path("/data"))

    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["transaction.state.log.min.isr"] == "1"
    assert properties["share.coordinator.state.topic.min.isr"] == "1"


def test_groups_join_without_the_initial_rebalance_delay() -> None:
    properties = broker_properties.server_properties(NODES[0], NODES[:1], Path("/data"))

    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert properties["auto.create.topics.enable"] == "true"


def test_caller_overrides_win_over_every_generated_setting() -> None:
    overrides = {"num.partitions": "7", "node.id": "42"}
    properties = broker_properties.server_properties(NODES[0], NODES, Path("/d"), overrides)

    assert properties["num.partitions"] == "7"
    assert properties["node.id"] == "42"


def test_rendered_properties_escape_what_java_treats_specially() -> None:
    text = broker_properties.render_properties(
        {"plain": "value", "key with=sign": "C:\\path", "multi": "a\nb", "lead": " space"}
    )

    assert text.splitlines() == [
        "plain=value",
        "key\\ with\\=sign=C:\\\\path",
        "multi=a\\nb",
        "lead=\\ space",
    ]


def test_broker_logs_go_to_stdout_and_tool_logs_to_stderr() -> None:
    broker = broker_properties.log4j2_properties()
    tool = broker_properties.log4j2_properties(level="WARN", target="SYSTEM_ERR")

    assert "appender.console.target = SYSTEM_OUT" in broker
    assert "rootLogger.level = INFO" in broker
    assert "appender.console.target = SYSTEM_ERR" in tool
    assert "rootLogger.level = WARN" in tool


def test_the_java_command_puts_jvm_options_before_the_main_class_and_arguments() -> None:
    command = broker_properties.java_command(
        "java", "/jars/*", "kafka.Kafka", ["server.properties"],
        log4j_config=Path("/l.properties"), jvm_options=["-Xmx1m"],
    )  # fmt: skip

    assert command == [
        "java",
        "-Xmx1m",
        "-Dlog4j2.configurationFile=/l.properties",
        "-cp",
        "/jars/*",
        "kafka.Kafka",
        "server.properties",
    ]


def test_default_jvm_options_keep_brokers_small() -> None:
    assert "-Xmx384m" in broker_properties.DEFAULT_JVM_OPTIONS
    assert "-XX:+UseSerialGC" in broker_properties.DEFAULT_JVM_OPTIONS


def test_storage_is_formatted_with_the_shared_cluster_id() -> None:
    arguments = broker_properties.format_arguments("abc", Path("/n/server.properties"))

    assert arguments[:3] == ["format", "--cluster-id", "abc"]
    assert "--config" in arguments


def test_cluster_ids_are_22_url_safe_characters_never_starting_with_a_dash() -> None:
    ids = {broker_properties.new_cluster_id() for _ in range(500)}

    assert len(ids) == 500
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_feature_levels_are_finalized_at_format_time_in_name_order() -> None:
    arguments = broker_properties.format_arguments(
        "cid", Path("server.properties"), features={"transaction.version": 1, "group.version": 0}
    )

    assert arguments[-4:] == ["--feature", "group.version=0", "--feature", "transaction.version=1"]


def test_without_feature_levels_the_release_defaults_apply() -> None:
    arguments = broker_properties.format_arguments("cid", Path("server.properties"))

    assert "--feature" not in arguments
