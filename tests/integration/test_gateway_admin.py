"""The admin API on a real gateway process: switching, epochs, credentials, state, metrics."""

from __future__ import annotations

import urllib.error
import urllib.request

from kafka_testbed import gateways
from kafka_testbed.raw_protocol import RawConnection

METADATA = 3


def test_the_conduktor_switch_path_moves_the_gateway_and_reports_what_it_closed(
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
        answer = gateway.switch("failover")
        assert answer.status == 200, answer
        assert answer.body["from"] == "main" and answer.body["to"] == "failover"
        assert answer.body["changed"] is True
        assert answer.body["closedConnections"] == 1
        assert connection.is_closed_by_peer()
    state = gateway.state()
    assert state["active"] == "failover"
    assert state["lastSwitch"]["to"] == "failover"


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
