"""The clock that ends slow and half-open client connections, driven by a fake time."""

from __future__ import annotations

from failover_gateway.pump.client_deadlines import Bound, ClientDeadlines


def deadlines(opened_at: float = 100.0) -> ClientDeadlines:
    return ClientDeadlines(opened_at=opened_at, first_request=10.0, frame=60.0, authentication=30.0)


def overruns_exactly_at_its_deadline(clock: ClientDeadlines, bound: Bound) -> str:
    """The overrun's description, after checking it comes at the deadline and not before."""
    when = clock.next_deadline()
    assert when is not None
    assert clock.overrun(when - 0.1) is None
    overrun = clock.overrun(when)
    assert overrun is not None and overrun.bound is bound
    return overrun.describe()


def test_a_connection_that_sends_nothing_overruns_the_first_request_bound() -> None:
    clock = deadlines()
    assert clock.next_deadline() == 110.0
    described = overruns_exactly_at_its_deadline(clock, Bound.FIRST_REQUEST)
    assert "clientFirstRequestMs=10000" in described


def test_a_completed_first_request_stops_the_first_request_bound() -> None:
    clock = deadlines()
    clock.request_completed()
    assert clock.next_deadline() is None
    assert clock.overrun(10_000.0) is None


def test_authentication_is_bounded_only_when_the_listener_expects_it() -> None:
    clock = deadlines()
    clock.request_completed()
    assert clock.overrun(200.0) is None
    clock.expect_authentication()
    overrun = clock.overrun(130.0)
    assert overrun is not None and overrun.bound is Bound.AUTHENTICATION
    clock.authenticated()
    assert clock.overrun(1000.0) is None


def test_a_frame_started_and_never_finished_overruns_the_frame_bound() -> None:
    clock = deadlines()
    clock.request_completed()
    clock.frame_started(200.0)
    assert clock.next_deadline() == 260.0
    assert "did not finish a frame" in overruns_exactly_at_its_deadline(clock, Bound.FRAME)


def test_a_finished_frame_stops_the_frame_clock_and_the_next_frame_starts_afresh() -> None:
    clock = deadlines()
    clock.request_completed()
    clock.frame_started(200.0)
    clock.frame_ended()
    assert clock.next_deadline() is None
    clock.frame_started(250.0)
    assert clock.overrun(300.0) is None
    assert clock.next_deadline() == 310.0


def test_time_the_gateway_paused_reading_does_not_count_against_a_frame() -> None:
    clock = deadlines()
    clock.request_completed()
    clock.frame_started(200.0)
    clock.paused(230.0)  # 30 s of reading used
    assert clock.next_deadline() is None
    assert clock.overrun(900.0) is None
    clock.resumed(900.0)
    assert clock.next_deadline() == 930.0
    assert clock.overrun(929.0) is None
    assert clock.overrun(930.0) is not None


def test_a_frame_started_while_reading_is_paused_runs_only_once_reading_resumes() -> None:
    clock = deadlines()
    clock.request_completed()
    clock.paused(200.0)
    clock.paused(201.0)  # a second reason to pause changes nothing
    clock.frame_started(205.0)
    assert clock.overrun(1000.0) is None
    clock.resumed(1000.0)
    clock.resumed(1001.0)
    assert clock.next_deadline() == 1060.0


def test_pauses_do_not_stop_the_first_request_bound() -> None:
    clock = deadlines()
    clock.paused(101.0)
    overrun = clock.overrun(111.0)
    assert overrun is not None and overrun.bound is Bound.FIRST_REQUEST
