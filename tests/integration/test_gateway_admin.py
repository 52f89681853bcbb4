"""The admin API on a real gateway process: switching, epochs, credentials, state, metrics."""

from __future__ import annotations

import urllib.error
import urllib.request

from conftest import GatewayFactory
from kafka_testbed import gateways
from kafka_testbed.clusters import Cluster
from kafka_testbed.raw_protocol import RawConnection

METADATA = 3


METADATA_BODY = {
    "Topics": [],
    "AllowAutoTopicCreation": False,
    "IncludeTopicAuthorizedOperations": False,
}


def test_the_conduktor_switch_path_moves_an_idle_connection_to_failover_under_its_client(
    gateway: gateways.GatewayProcess,
) -> None:
    with RawConnection(gateway.bootstrap) as connection:
        before = connection.request(METADATA, 12, METADATA_BODY)
        answer = gateway.switch("failover")
        assert answer.status == 200, answer
        assert answer.body["from"] == "main" and answer.body["to"] == "failover"
        assert answer.body["changed"] is True
        assert answer.body["movedConnections"] == 1 and answer.body["closedConnections"] == 0
        assert not connection.is_closed_by_peer(timeout=0.3)
        after = connection.request(METADATA, 12, METADATA_BODY)
        assert after["ClusterId"] != before["ClusterId"], "the same socket now reaches failover"
        assert [b["Port"] for b in after["Brokers"]] != [], after
    state = gateway.state()
    assert state["active"] == "failover"
    assert state["lastSwitch"]["to"] == "failover" and state["lastSwitch"]["movedConnections"] == 1
    assert 'kafka_failover_switched_connections_total{outcome="moved"} 1.0' in gateway.metrics()


def test_a_gateway_told_not_to_move_connections_closes_them_at_a_switch(
    gateway_factory: GatewayFactory, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    gateway = gateway_factory(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap},
        gateway_extra={"moveIdleConnections": False},
    )
    with RawConnection(gateway.bootstrap) as connection:
        connection.request(METADATA, 12, METADATA_BODY)
        answer = gateway.switch("failover")
        assert answer.body["closedConnections"] == 1 and answer.body["movedConnections"] == 0
        assert connection.is_closed_by_peer()


def test_switching_to_the_active_cluster_is_a_success_that_closes_nothing(
    gateway: gateways.GatewayProcess,
) -> None:
    with RawConnection(gateway.bootstrap) as connection:
        connection.request(
            METADATA,
            12,
            {
                "Topics": [],
                "AllowAutoTopicCreation": False,
                "IncludeTopicAuthorizedOperations": False,
            },
        )
        answer = gateway.switch("main")
        assert answer.status == 200
        assert answer.body["changed"] is False and answer.body["closedConnections"] == 0
        assert not connection.is_closed_by_peer(timeout=0.5)


def test_a_command_with_an_older_epoch_is_refused_and_changes_nothing(
    gateway: gateways.GatewayProcess,
) -> None:
    assert gateway.put_active("failover", epoch=5).status == 200
    stale = gateway.put_active("main", epoch=4)
    assert stale.status == 409
    assert "stale epoch 4" in stale.body["error"]
    state = gateway.state()
    assert (state["active"], state["epoch"]) == ("failover", 5)
    assert gateway.put_active("main", epoch=5).status == 200
    assert gateway.state()["active"] == "main"


def test_wrong_or_missing_credentials_get_401_and_change_nothing(
    gateway: gateways.GatewayProcess,
) -> None:
    wrong = gateway.request(
        "POST", "/admin/pclusters/v1/pcluster/main/switch?to=failover", auth=("admin", "nope")
    )
    assert wrong.status == 401
    request = urllib.request.Request(gateway.admin_url + "/api/v1/state")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("state without credentials must be refused")
    except urllib.error.HTTPError as error:
        assert error.code == 401
    assert gateway.state()["active"] == "main"
    assert "nope" not in gateway.log_tail(200)
    assert "admin auth failed" in gateway.log_tail(200)


def test_bad_switch_requests_name_what_is_wrong(gateway: gateways.GatewayProcess) -> None:
    unknown = gateway.switch("elsewhere")
    assert unknown.status == 400 and "configured clusters: main, failover" in unknown.body["error"]
    missing = gateway.request("POST", "/admin/pclusters/v1/pcluster/main/switch")
    assert missing.status == 400 and "'to' is required" in missing.body["error"]
    no_epoch = gateway.request("PUT", "/api/v1/active", {"cluster": "failover"})
    assert no_epoch.status == 400 and "epoch is required" in no_epoch.body["error"]
    bad_epoch = gateway.put_active("failover", epoch=-1)  # type: ignore[arg-type]
    assert bad_epoch.status == 400 and "non-negative" in bad_epoch.body["error"]
    assert gateway.state()["active"] == "main"


def test_health_and_metrics_need_no_credentials_and_report_upstreams(
    gateway: gateways.GatewayProcess,
) -> None:
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(gateway.admin_url + path, timeout=10) as response:
            assert response.status == 200
    gateway.switch("failover")
    text = gateway.metrics()
    assert 'kafka_failover_active_cluster{cluster="failover"} 1.0' in text
    assert "kafka_failover_switches_total 1.0" in text
    assert 'kafka_failover_upstream_reachable{cluster="main"}' in text
    state = gateway.state()
    assert set(state["upstreams"]) == {"main", "failover"}
