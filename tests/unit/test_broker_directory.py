"""Where a new client connection is dialled: its own broker and no other, or any for bootstrap."""

from __future__ import annotations

from failover_gateway.config import HostPort, config_from_mapping
from failover_gateway.routing.address_rewriting import BrokerAddress
from failover_gateway.routing.broker_directory import BrokerDirectory

MAIN_BOOTSTRAP = ["main-a:9092", "main-b:9092"]


def directory(*, learned: bool = True) -> BrokerDirectory:
    config = config_from_mapping(
        {
            "config": {
                "main": {"bootstrap.servers": ",".join(MAIN_BOOTSTRAP)},
                "failover": {"bootstrap.servers": "dr:9092", "gateway.roles": "failover"},
            },
            "gateway": {
                "listener": {"host": "127.0.0.1", "port": 6969, "advertisedHost": "gw"},
                "admin": {"host": "127.0.0.1", "port": 8888},
                "active": "main",
            },
        }
    )
    found = BrokerDirectory(config)
    if not learned:
        return found
    found.learn("main", [BrokerAddress(n, f"main-{n}", 9092) for n in (1, 2, 3)])
    found.learn("failover", [BrokerAddress(7, "dr-7", 9092)])
    return found


def slot_of(found: BrokerDirectory, cluster: str, node_id: int) -> int:
    slot = found.slot_of_port(found.advertised_port(cluster, node_id))
    assert slot is not None
    return slot


def test_a_nodes_port_is_dialled_to_that_broker_only_so_a_down_broker_fails_the_connection() -> (
    None
):
    found = directory()

    targets = found.targets("main", slot_of(found, "main", 1))

    assert targets == [HostPort("main-1", 9092)]


def test_a_slot_the_active_cluster_has_no_broker_for_goes_to_a_stable_broker_then_bootstrap() -> (
    None
):
    found = directory()
    slot = slot_of(found, "main", 2)  # a port main clients hold; failover only has broker 7

    targets = found.targets("failover", slot)

    assert targets == [HostPort("dr-7", 9092), HostPort("dr", 9092)]


def test_the_bootstrap_port_tries_every_bootstrap_server_rotating_the_first() -> None:
    found = directory()

    first, second = found.targets("main", None), found.targets("main", None)

    assert sorted(map(str, first)) == sorted(MAIN_BOOTSTRAP)
    assert first != second and sorted(map(str, second)) == sorted(MAIN_BOOTSTRAP)


def test_before_any_metadata_a_nodes_port_goes_to_the_bootstrap_servers() -> None:
    found = directory(learned=False)

    assert sorted(map(str, found.targets("main", 1))) == sorted(MAIN_BOOTSTRAP)
