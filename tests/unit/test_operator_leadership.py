"""Leader election decided without a cluster: which Lease is taken, when, and what held() says."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from failover_operator import leadership, main
from failover_operator.leadership import Decision, Leadership, Lease, Tenure, Timing

ME, OTHER = "operator-a-1f2e3d", "operator-b-4c5b6a"
NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
TIMING = Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)


def lease(holder: str, *, version: str = "41", duration: int | None = 15) -> Lease:
    spec: leadership.LeaseSpec = {
        "holderIdentity": holder,
        "renewTime": "2025-03-01T11:59:59.000000Z",
        "acquireTime": "2025-03-01T11:00:00.000000Z",
        "leaseTransitions": 4,
    }
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return {
        "metadata": {"name": leadership.LEASE_NAME, "namespace": "ops", "resourceVersion": version},
        "spec": spec,
    }


def standby(found: Lease | None, unchanged_for: float = 0.0) -> Decision:
    return leadership.decide(
        found, me=ME, leading=False, unchanged_for=unchanged_for, duration=TIMING.lease_duration
    )


def leader(found: Lease | None) -> Decision:
    return leadership.decide(
        found, me=ME, leading=True, unchanged_for=0.0, duration=TIMING.lease_duration
    )


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# What a standby does with the Lease it reads.


def test_an_absent_lease_is_created_holding_it() -> None:
    assert standby(None) is Decision.CREATE
    body = leadership.created("ops", ME, TIMING, NOW)
    assert body["metadata"] == {"name": "kafka-failover-operator", "namespace": "ops"}
    assert body["spec"]["holderIdentity"] == ME
    assert body["spec"]["leaseDurationSeconds"] == 15
    assert body["spec"]["renewTime"] == body["spec"]["acquireTime"] == "2025-03-01T12:00:00.123456Z"


def test_someone_elses_live_lease_is_waited_for() -> None:
    assert standby(lease(OTHER), unchanged_for=14.9) is Decision.WAIT


def test_a_lease_unchanged_for_its_whole_duration_is_taken_over_with_its_resource_version() -> None:
    assert standby(lease(OTHER), unchanged_for=15.0) is Decision.CLAIM
    body = leadership.claimed(lease(OTHER), ME, TIMING, NOW)
    assert body["metadata"]["resourceVersion"] == "41", "the update must be conditional"
    assert body["spec"]["holderIdentity"] == ME
    assert body["spec"]["acquireTime"] == body["spec"]["renewTime"] == leadership.micro_time(NOW)
    assert body["spec"]["leaseTransitions"] == 5


def test_the_duration_written_by_the_holder_wins_over_our_own() -> None:
    assert standby(lease(OTHER, duration=30), unchanged_for=20.0) is Decision.WAIT
    assert standby(lease(OTHER, duration=None), unchanged_for=15.0) is Decision.CLAIM


def test_a_released_lease_is_claimed_at_once() -> None:
    released = leadership.released(lease(ME), NOW)
    assert released["spec"]["holderIdentity"] == ""
    assert released["spec"]["leaseDurationSeconds"] == 1
    assert released["metadata"]["resourceVersion"] == "41"
    assert standby(released, unchanged_for=0.0) is Decision.CLAIM


def test_a_lease_already_ours_is_claimed_without_a_new_transition() -> None:
    assert standby(lease(ME)) is Decision.CLAIM
    body = leadership.claimed(lease(ME), ME, TIMING, NOW)
    assert body["spec"]["leaseTransitions"] == 4
    assert body["spec"]["acquireTime"] == "2025-03-01T11:00:00.000000Z"


def test_the_time_a_lease_stays_unchanged_restarts_with_every_new_version() -> None:
    observer = leadership.Observer()
    assert observer.see(lease(OTHER, version="41"), now=100.0) == 0.0
    assert observer.see(lease(OTHER, version="41"), now=112.5) == 12.5
    assert observer.see(lease(OTHER, version="42"), now=113.0) == 0.0, "the holder renewed"
    assert observer.see(lease(OTHER, version="42"), now=130.0) == 17.0


# What the leader does with the Lease it reads.


def test_our_own_lease_is_renewed_keeping_everything_but_the_renew_time() -> None:
    assert leader(lease(ME)) is Decision.RENEW
    body = leadership.renewed(lease(ME), NOW)
    assert body["spec"] == {**lease(ME)["spec"], "renewTime": "2025-03-01T12:00:00.123456Z"}
    assert body["metadata"]["resourceVersion"] == "41"


def test_a_leader_finding_the_lease_someone_elses_or_deleted_has_lost() -> None:
    assert leader(lease(OTHER)) is Decision.LOST
    assert leader(lease("")) is Decision.LOST
    assert leader(None) is Decision.LOST


# held(): the guard in front of every action.


def test_held_turns_false_once_the_last_renewal_is_a_renew_deadline_old() -> None:
    clock = FakeClock()
    tenure = Tenure(ME, renew_deadline=10.0, renewed_at=clock(), clock=clock)
    state = Leadership(electing=True, tenure=tenure)
    clock.now += 9.9
    assert state.held()
    clock.now += 0.1
    assert not state.held()
    with pytest.raises(leadership.NotLeader, match=r"10\.0 s ago, past its renew deadline of 10 s"):
        state.ensure()


def test_a_renewal_keeps_the_lease_held_and_an_older_one_never_shortens_it() -> None:
    clock = FakeClock()
    tenure = Tenure(ME, renew_deadline=10.0, renewed_at=clock(), clock=clock)
    clock.now += 8.0
    tenure.renewed(at=clock.now - 0.5)
    tenure.renewed(at=clock.now - 7.0)
    clock.now += 9.0
    assert tenure.held() and tenure.age() == pytest.approx(9.5)


def test_a_standby_or_a_lost_leader_does_not_hold_the_lease() -> None:
    clock = FakeClock()
    assert not Leadership(electing=True).held()
    with pytest.raises(leadership.NotLeader, match="standby"):
        Leadership(electing=True).ensure()
    lost = Tenure(ME, renew_deadline=10.0, renewed_at=clock(), clock=clock, lost=True)
    assert not Leadership(electing=True, tenure=lost).held()


def test_without_an_election_the_process_is_the_only_operator_and_may_act() -> None:
    assert Leadership().held()
    assert leadership.held(), "no election runs in the unit tests' process"
    leadership.ensure_held()


# Settings from the environment.


def test_the_defaults_are_controller_runtimes() -> None:
    assert leadership.timing_from_env({}) == Timing(15.0, 10.0, 2.0)


def test_every_duration_can_be_set_in_seconds_as_a_float() -> None:
    env = {
        "KAFKA_FAILOVER_LEASE_DURATION": "3",
        "KAFKA_FAILOVER_LEASE_RENEW_DEADLINE": "2",
        "KAFKA_FAILOVER_LEASE_RETRY_PERIOD": "0.5",
    }
    assert leadership.timing_from_env(env) == Timing(3.0, 2.0, 0.5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_FAILOVER_LEASE_DURATION": "soon"}, "KAFKA_FAILOVER_LEASE_DURATION='soon' is not"),
        ({"KAFKA_FAILOVER_LEASE_RETRY_PERIOD": "0"}, "RETRY_PERIOD='0' must be .* greater than 0"),
        ({"KAFKA_FAILOVER_LEASE_RENEW_DEADLINE": "-1"}, "RENEW_DEADLINE='-1' must be"),
        ({"KAFKA_FAILOVER_LEASE_DURATION": "nan"}, "KAFKA_FAILOVER_LEASE_DURATION='nan' must be"),
        (
            {"KAFKA_FAILOVER_LEASE_RENEW_DEADLINE": "15"},
            r"KAFKA_FAILOVER_LEASE_RENEW_DEADLINE=15 must be greater than 0 and less than "
            r"KAFKA_FAILOVER_LEASE_DURATION \(15\)",
        ),
        (
            {"KAFKA_FAILOVER_LEASE_DURATION": "3", "KAFKA_FAILOVER_LEASE_RENEW_DEADLINE": "5"},
            r"RENEW_DEADLINE=5 must be greater than 0 and less than .*DURATION \(3\)",
        ),
        (
            {"KAFKA_FAILOVER_LEASE_RETRY_PERIOD": "10"},
            r"KAFKA_FAILOVER_LEASE_RETRY_PERIOD=10 must be greater than 0 and less than "
            r"KAFKA_FAILOVER_LEASE_RENEW_DEADLINE \(10\)",
        ),
    ],
)
def test_an_invalid_duration_is_refused_naming_the_variable_and_the_valid_range(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(leadership.SettingsError, match=message):
        leadership.timing_from_env(env)


def test_two_processes_on_one_host_get_different_identities_named_after_it() -> None:
    first = leadership.identity({"HOSTNAME": "kfo-7d9c-x2"})
    second = leadership.identity({"HOSTNAME": "kfo-7d9c-x2"})
    assert first != second
    assert first.startswith("kfo-7d9c-x2-") and second.startswith("kfo-7d9c-x2-")


def test_the_lease_lives_in_the_pods_namespace_else_the_first_watched_one(tmp_path: Path) -> None:
    absent = tmp_path / "no-such-file"
    assert leadership.lease_namespace({"POD_NAMESPACE": "ops"}, ["b", "a"], absent) == "ops"
    assert leadership.lease_namespace({}, ["b", "a"], absent) == "a", "whatever the flags' order"
    account = tmp_path / "namespace"
    account.write_text("kfo-system\n")
    assert leadership.lease_namespace({}, [], account) == "kfo-system"


def test_watching_every_namespace_outside_a_pod_asks_for_pod_namespace(tmp_path: Path) -> None:
    with pytest.raises(leadership.SettingsError, match="set POD_NAMESPACE"):
        leadership.lease_namespace({}, [], tmp_path / "no-such-file")


def test_the_operator_refuses_to_start_on_an_invalid_duration_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_FAILOVER_LEASE_RENEW_DEADLINE", "20")
    assert main.main(["--namespace", "ops"]) == 2
    error = capsys.readouterr().err
    assert "KAFKA_FAILOVER_LEASE_RENEW_DEADLINE=20 must be greater than 0 and less than" in error
