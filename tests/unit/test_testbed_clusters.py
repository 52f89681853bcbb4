"""A cluster object over stand-in processes: addresses, kill, stop, log tails, start errors."""

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_testbed import clusters, networking, supervising
from kafka_testbed.clusters import Cluster, Node
from kafka_testbed.errors import ClusterStartError

LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print('listening on', sys.argv[1], flush=True); time.sleep(60)\n"
)


def listener_node(node_id: int, workdir: Path) -> Node:
    port = networking.free_ports(1)[0]
    command = [sys.executable, "-c", LISTENER, str(port)]
    return Node(node_id, f"127.0.0.1:{port}", command, workdir / "logs" / f"node-{node_id}.log")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    workdir = tmp_path / "cluster"
    (workdir / "logs").mkdir(parents=True)
    nodes = {node_id: listener_node(node_id, workdir) for node_id in (4, 5)}
    started = Cluster("stand-in", "pair", nodes, workdir, startup_seconds=1.25)
    for node in nodes.values():
        node.process = supervising.spawn(node.command, node.log_path)
    started.wait_until_listening(list(nodes), timeout=20)
    yield started
    started.stop(grace_seconds=0)


def test_bootstrap_and_brokers_name_every_node_in_order(cluster: Cluster) -> None:
    assert list(cluster.brokers) == [4, 5]
    assert cluster.bootstrap == f"{cluster.brokers[4]},{cluster.brokers[5]}"


def test_a_cluster_describes_how_long_it_took_to_start(cluster: Cluster) -> None:
    assert cluster.describe() == "stand-in 2 brokers started in 1.2s"
    del cluster.nodes[5]
    assert cluster.describe() == "stand-in 1 broker started in 1.2s"


def test_killing_a_node_closes_its_port_and_leaves_the_others(cluster: Cluster) -> None:
    cluster.kill(4)

    assert cluster.unreachable_nodes() == [4]
    assert list(cluster.pids) == [5]


def test_a_killed_node_can_be_restarted_on_the_same_address(cluster: Cluster) -> None:
    address = cluster.brokers[4]
    cluster.kill(4)

    cluster.restart(4, timeout=20)

    assert cluster.brokers[4] == address
    assert cluster.unreachable_nodes() == []


def test_restarting_a_running_node_is_refused(cluster: Cluster) -> None:
    with pytest.raises(ClusterStartError, match="already running"):
        cluster.restart(5)


def test_killing_an_unknown_node_names_the_known_ones(cluster: Cluster) -> None:
    with pytest.raises(KeyError, match=r"no node 9; nodes: \[4, 5\]"):
        cluster.kill(9)


def test_stopping_ends_every_process_and_removes_the_working_folder(cluster: Cluster) -> None:
    pids = list(cluster.pids.values())

    cluster.stop(grace_seconds=0)
    cluster.stop()

    assert cluster.pids == {}
    assert not any(supervising.is_running(pid) for pid in pids)
    assert not cluster.workdir.exists()


def test_a_kept_working_folder_survives_the_stop(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(clusters.KEEP_FILES_ENV_VAR, "1")

    cluster.stop(grace_seconds=0)

    assert (cluster.workdir / "logs").is_dir()


def test_the_log_tail_shows_each_node_under_a_header(cluster: Cluster) -> None:
    tail = cluster.log_tail(5)

    assert "----- pair node 4 (running)" in tail
    assert "----- pair node 5 (running)" in tail
    assert f"listening on {cluster.brokers[4].rpartition(':')[2]}" in tail


def test_a_node_that_exits_makes_the_start_fail_with_its_status_and_log(cluster: Cluster) -> None:
    node = cluster.nodes[4]
    node.log_path.write_text("boom: something broke\n")
    assert node.process is not None
    node.process.kill()
    node.process.wait()

    with pytest.raises(ClusterStartError) as failure:
        cluster.raise_if_any_died()

    assert "node 4 exited with status -9" in str(failure.value)
    assert "boom: something broke" in str(failure.value)


def test_waiting_for_a_silent_node_times_out_with_the_log_tail(tmp_path: Path) -> None:
    quiet = Node(1, f"127.0.0.1:{networking.free_ports(1)[0]}", ["sleep", "30"], tmp_path / "q")
    quiet.log_path.write_text("still thinking\n")
    cluster = Cluster("stand-in", "quiet", {1: quiet}, tmp_path)
    quiet.process = supervising.spawn(quiet.command, quiet.log_path)
    try:
        with pytest.raises(ClusterStartError, match=r"(?s)not listening after 0s.*still thinking"):
            cluster.wait_until_listening([1], timeout=0.2)
    finally:
        cluster.stop(grace_seconds=0)


def test_the_tail_of_a_log_is_its_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {n}\n" for n in range(100_000)))

    assert clusters.read_tail(log, 2) == ["line 99998", "line 99999"]
    assert clusters.read_tail(log, 0) == []
    assert clusters.read_tail(tmp_path / "missing", 3)[0].startswith("(no log:")


def test_stopping_several_clusters_stops_them_all(tmp_path: Path) -> None:
    started = []
    for name in ("a", "b"):
        node = Node(1, "127.0.0.1:1", ["sleep", "30"], tmp_path / f"{name}.log")
        node.process = supervising.spawn(node.command, node.log_path)
        started.append(Cluster("stand-in", name, {1: node}, tmp_path / name))
    pids = [pid for cluster in started for pid in cluster.pids.values()]

    clusters.stop_all(started, grace_seconds=0)

    assert not any(supervising.is_running(pid) for pid in pids)


def test_unreachable_nodes_are_those_refusing_connections(cluster: Cluster) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    cluster.nodes[5].address = closed

    assert cluster.unreachable_nodes() == [5]


def test_a_cluster_used_as_a_context_manager_is_stopped_on_exit(cluster: Cluster) -> None:
    pids = list(cluster.pids.values())
    with cluster:
        pass

    assert not any(supervising.is_running(pid) for pid in pids)
