"""Two candidates racing for one Lease through a fake API that keeps resourceVersions as the API
server does: conflicts, takeover, loss, release and renewal failures, on a fake clock."""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from failover_operator import electing, leases
from failover_operator.leadership import LEASE_NAME, Lease, Tenure, Timing

NAMESPACE = "ops"
TIMING = Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)
WALL = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)


@dataclass
class Answer:
    data: bytes


class FakeLeaseApi:
    """One namespace of the coordination API: optimistic concurrency on resourceVersion."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 100
        self.failing: ApiException | None = None

    def _check(self, name: str, namespace: str) -> None:
        assert (name, namespace) == (LEASE_NAME, NAMESPACE)
        if self.failing is not None:
            raise self.failing

    def _stored(self, body: dict[str, Any]) -> Answer:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return Answer(json.dumps(self.lease).encode())

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> Answer:
        self._check(name, namespace)
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return Answer(json.dumps(self.lease).encode())

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> Answer:
        self._check(body["metadata"]["name"], namespace)
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._stored(body)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: dict[str, Any], **_: Any
    ) -> Answer:
        self._check(name, namespace)
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        return self._stored(body)

    @property
    def holder(self) -> str:
        assert self.lease is not None
        return str(self.lease["spec"]["holderIdentity"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> FakeLeaseApi:
    return FakeLeaseApi()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def candidate(api: FakeLeaseApi, clock: FakeClock, identity: str) -> electing.Candidate:
    election = electing.Election(NAMESPACE, identity, TIMING)
    client = leases.LeaseClient(api, NAMESPACE)
    return electing.Candidate(client, election, clock=clock, wall=lambda: WALL)


def leader(api: FakeLeaseApi, clock: FakeClock, identity: str) -> tuple[electing.Candidate, Tenure]:
    """A candidate that found no Lease and created it."""
    elected = candidate(api, clock, identity)
    tenure = elected.try_acquire()
    assert tenure is not None and tenure.held() and api.holder == identity
    return elected, tenure


def test_the_first_candidate_creates_the_lease_and_the_second_stands_by(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    leader(api, clock, "a")
    second = candidate(api, clock, "b")
    assert second.try_acquire() is None
    assert second.report() == {"leadership": "standby", "identity": "b", "holder": "a"}


def test_a_leader_that_stops_renewing_is_replaced_after_the_lease_duration_and_then_knows_it(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    (first, tenure), second = leader(api, clock, "a"), candidate(api, clock, "b")
    assert second.try_acquire() is None
    clock.now += 14.9
    assert second.try_acquire() is None
    assert not tenure.held(), "the old leader stopped trusting its lease 4.9 s ago"
    clock.now += 0.1
    assert second.try_acquire() is not None and api.holder == "b"
    assert api.lease is not None and api.lease["spec"]["leaseTransitions"] == 1
    with pytest.raises(electing.LostLease, match="now held by b"):
        first.renew(tenure)


def test_a_live_leader_renewing_keeps_the_standby_waiting_indefinitely(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    (first, tenure), second = leader(api, clock, "a"), candidate(api, clock, "b")
    for _ in range(20):
        clock.now += TIMING.retry_period
        first.renew(tenure)
        assert second.try_acquire() is None
    assert tenure.held() and api.holder == "a"


def test_of_two_standbys_taking_over_at_once_one_wins_and_the_other_stands_by(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    leader(api, clock, "old")
    left, right = candidate(api, clock, "left"), candidate(api, clock, "right")
    assert left.try_acquire() is None and right.try_acquire() is None
    clock.now += 15.0
    lease_seen_by_right = api.read_namespaced_lease(LEASE_NAME, NAMESPACE)
    assert left.try_acquire() is not None
    api_version = api.version
    right.client.read = lambda timeout: json.loads(lease_seen_by_right.data)  # type: ignore[method-assign]
    assert right.try_acquire() is None, "its update carried a stale resourceVersion"
    assert api.holder == "left" and api.version == api_version


def test_a_released_lease_is_taken_at_the_next_look_not_after_its_duration(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    (first, tenure), second = leader(api, clock, "a"), candidate(api, clock, "b")
    assert second.try_acquire() is None
    first.release(tenure)
    assert api.holder == ""
    clock.now += TIMING.retry_period
    assert second.try_acquire() is not None and api.holder == "b"


def test_a_leader_past_its_deadline_does_not_release_what_may_be_someone_elses(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    first, tenure = leader(api, clock, "a")
    clock.now += TIMING.renew_deadline
    first.release(tenure)
    assert api.holder == "a"


def test_renewal_failures_are_tolerated_until_the_renew_deadline_then_the_leader_gives_up(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    first, tenure = leader(api, clock, "a")
    reasons: list[str] = []
    renewer = electing.Renewer(first, tenure, on_lost=reasons.append)
    api.failing = ApiException(status=503, reason="Service Unavailable")
    for _ in range(4):
        clock.now += TIMING.retry_period
        renewer.renew_once()
    assert reasons == [] and tenure.held()
    clock.now += TIMING.retry_period
    renewer.renew_once()
    assert len(reasons) == 1
    assert "no renewal of Lease ops/kafka-failover-operator for 10.0 s" in reasons[0]
    assert "503 Service Unavailable" in reasons[0]


def test_the_renewer_gives_up_at_once_when_the_lease_was_taken(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    (first, tenure), second = leader(api, clock, "a"), candidate(api, clock, "b")
    assert api.lease is not None
    api.lease["spec"]["holderIdentity"] = ""  # as a release by an earlier incarnation would
    api.version += 1
    api.lease["metadata"]["resourceVersion"] = str(api.version)
    assert second.try_acquire() is not None
    reasons: list[str] = []
    electing.Renewer(first, tenure, on_lost=reasons.append).renew_once()
    assert reasons == ["Lease ops/kafka-failover-operator is now held by b"]


def test_a_write_by_someone_else_that_leaves_us_holding_is_renewed_over(
    api: FakeLeaseApi, clock: FakeClock
) -> None:
    first, tenure = leader(api, clock, "a")
    assert api.lease is not None
    api.lease["metadata"]["labels"] = {"touched": "by-an-admin"}
    api.version += 1
    api.lease["metadata"]["resourceVersion"] = str(api.version)
    clock.now += TIMING.retry_period
    first.renew(tenure)
    assert api.holder == "a" and tenure.age() == 0.0


def test_an_api_error_names_the_lease_and_the_servers_message(api: FakeLeaseApi) -> None:
    denied = ApiException(status=403, reason="Forbidden")
    denied.body = json.dumps({"message": 'leases.coordination.k8s.io "x" is forbidden'})
    api.failing = denied
    with pytest.raises(leases.LeaseCallError) as raised:
        leases.LeaseClient(api, NAMESPACE).read(timeout=1.0)
    assert str(raised.value) == (
        'reading Lease ops/kafka-failover-operator: 403 leases.coordination.k8s.io "x" is forbidden'
    )


def test_the_lease_read_back_is_raw_json(api: FakeLeaseApi, clock: FakeClock) -> None:
    leader(api, clock, "a")
    read: Lease | None = leases.LeaseClient(api, NAMESPACE).read(timeout=1.0)
    assert read is not None and read["spec"]["holderIdentity"] == "a"
    assert read["spec"]["renewTime"] == "2025-03-01T12:00:00.000000Z"
