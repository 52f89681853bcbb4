"""The admin API's credential failure limiter on a fake clock: a token bucket per client
address, and log lines that sum a flood up instead of repeating it."""

from __future__ import annotations

import logging

import pytest

from failover_gateway.server import metrics
from failover_gateway.server.admin_guarding import MAX_ADDRESS_LINES, AuthFailureLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(
    clock: FakeClock, *, burst: int = 3, per_minute: float = 6, max_addresses: int = 100
) -> tuple[AuthFailureLimiter, metrics.AdminAbuse]:
    counts = metrics.AdminAbuse()
    made = AuthFailureLimiter(
        burst=burst,
        per_minute=per_minute,
        counts=counts,
        clock=clock,
        max_addresses=max_addresses,
    )
    return made, counts


def admin_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The limiter's own lines (other loggers' records may land in the capture too)."""
    return [record for record in caplog.records if record.name == "failover_gateway.admin"]


def test_an_address_may_fail_a_burst_of_times_before_it_must_wait() -> None:
    clock = FakeClock()
    limits, counts = limiter(clock, burst=3, per_minute=6)
    for _ in range(3):
        assert limits.retry_after("10.0.0.1") is None
        limits.failed("10.0.0.1", "admin", "GET /api/v1/state")
    assert limits.retry_after("10.0.0.1") == 10  # one failure back every 10 s
    assert (counts.auth_failures, counts.auth_throttled) == (3, 1)


def test_the_bucket_refills_at_the_configured_rate() -> None:
    clock = FakeClock()
    limits, _ = limiter(clock, burst=2, per_minute=60)
    limits.failed("10.0.0.1", "admin", "x")
    limits.failed("10.0.0.1", "admin", "x")
    clock.now += 0.4
    assert limits.retry_after("10.0.0.1") == 1
    clock.now += 0.6
    assert limits.retry_after("10.0.0.1") is None


def test_one_address_over_its_limit_leaves_others_alone() -> None:
    clock = FakeClock()
    limits, _ = limiter(clock, burst=1)
    limits.failed("10.0.0.1", "admin", "x")
    assert limits.retry_after("10.0.0.1") is not None
    assert limits.retry_after("10.0.0.2") is None


def test_the_first_failure_is_logged_in_full_and_the_rest_in_one_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="failover_gateway.admin")
    clock = FakeClock()
    limits, _ = limiter(clock, burst=5)
    for _ in range(500):
        if limits.retry_after("10.0.0.1") is None:
            limits.failed("10.0.0.1", "mallory", "PUT /api/v1/active")
    assert len(caplog.records) == 1
    assert "from 10.0.0.1 for user 'mallory' on PUT /api/v1/active" in caplog.records[0].message
    limits.summarize()
    assert len(caplog.records) == 2
    assert caplog.records[1].message == (
        "admin auth from 10.0.0.1 in the last 60s: 4 more failures, 495 refused with 429"
    )
    limits.summarize()
    assert len(caplog.records) == 2, "a quiet interval logs nothing"


def test_quiet_addresses_with_a_full_bucket_are_forgotten() -> None:
    clock = FakeClock()
    limits, _ = limiter(clock, burst=2, per_minute=60)
    limits.failed("10.0.0.1", "admin", "x")
    limits.summarize()
    assert limits.tracked_addresses == 1
    clock.now += 2
    limits.summarize()
    assert limits.tracked_addresses == 0


def test_a_flood_from_many_addresses_tracks_a_bounded_number_of_them() -> None:
    clock = FakeClock()
    limits, counts = limiter(clock, max_addresses=50)
    for number in range(5000):
        limits.failed(f"10.0.{number // 256}.{number % 256}", "admin", "x")
    assert limits.tracked_addresses == 50
    assert counts.auth_failures == 5000


def test_a_flood_from_many_addresses_logs_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="failover_gateway.admin")
    clock = FakeClock()
    limits, _ = limiter(clock, burst=1, max_addresses=10_000)
    for _ in range(3):
        for number in range(1000):
            address = f"10.1.{number // 256}.{number % 256}"
            if limits.retry_after(address) is None:
                limits.failed(address, "admin", "x")
    assert len(admin_lines(caplog)) == MAX_ADDRESS_LINES
    caplog.clear()
    limits.summarize()
    assert len(admin_lines(caplog)) == MAX_ADDRESS_LINES + 1
    assert admin_lines(caplog)[-1].message == (
        "admin auth from 900 more addresses in the last 60s: 900 failures, 1800 refused with 429"
    )
